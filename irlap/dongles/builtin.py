"""The built-in SIR dongle drivers.

Sequences follow the reference table (irda-facts section 8, from the dongles' documented
protocols as the Linux drivers implement them), written anew here. ``a/b`` in the comments is the
DTR/RTS level. Known defects of older drivers are not carried over: girbil and mcp2120 switch to
38400 for real (the old drivers tested ``case 34800`` and stayed at 9600).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from irlap.dongles import Dongle, DongleError

SIR_SPEEDS = (9600, 19200, 38400, 57600, 115200)


class Plain(Dongle):
    """No control at all: the IR speed is the UART speed (built-in SIR ports, most modern adapters)."""

    name = "plain"
    description = "no speed control (IR = UART speed)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)

    def open(self) -> None:
        """Raise the lines and go to 9600 bit/s, without the 50 ms power-up wait of the dongle drivers.

        That wait is a dongle's (Linux runs it in its dongle-open step, which irtty-sir without a dongle type
        never takes); a port without a dongle, a built-in SIR port or a PTY has nothing to power up, and an
        adapter powered from DTR/RTS got them when the port was opened (pyserial raises both).
        """
        self.lines(True, True)
        self.reset()
        self.set_speed(9600)

    def lines(self, dtr: bool, rts: bool) -> None:
        """Raise the lines for adapters that draw power from them; ports without lines (PTYs) are fine."""
        try:
            super().lines(dtr, rts)
        except OSError as exc:
            if exc.errno not in (errno.ENOTTY, errno.EINVAL, errno.ENOTSUP):
                raise


class Tekram(Dongle):
    """Tekram IR-210B: one command byte while DTR high / RTS low."""

    name = "tekram"
    description = "Tekram IR-210B"
    speeds = SIR_SPEEDS
    min_turnaround_us = 10000
    CODES: ClassVar[dict[int, int]] = {9600: 0x04, 19200: 0x03, 38400: 0x02, 57600: 0x01, 115200: 0x00}

    def reset(self) -> None:
        self.lines(False, True)  # 0/1
        self.sleep(0.001)
        self.lines(True, True)
        self.sleep(75e-6)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.lines(True, False)  # 1/0: command mode
        self.sleep(14e-6)
        self.command(bytes((0x10 | self.CODES[baud],)))
        self.sleep(0.150)  # the dongle switches
        self.lines(True, True)
        self.sleep(50e-6)
        self.port.baudrate = baud
        self.speed = baud


class Actisys(Dongle):
    """ACTiSYS IR-220L: reset to 9600, then one RTS pulse per step along 9600, 19200, 57600, 115200."""

    name = "actisys"
    description = "ACTiSYS IR-220L"
    STEPS: ClassVar[tuple[int, ...]] = (9600, 19200, 57600, 115200, 38400)
    speeds = (9600, 19200, 57600, 115200)
    min_turnaround_us = 10

    def reset(self) -> None:
        self.lines(False, True)  # DTR low resets
        self.sleep(10e-6)
        self.lines(True, True)
        self.sleep(10e-6)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.reset()
        for _ in range(self.STEPS.index(baud)):
            self.lines(True, False)
            self.sleep(10e-6)
            self.lines(True, True)
            self.sleep(10e-6)
        self.port.baudrate = baud
        self.speed = baud


class ActisysPlus(Actisys):
    """ACTiSYS IR-220L+: as the IR-220L, plus 38400 as the fifth step."""

    name = "actisys+"
    description = "ACTiSYS IR-220L+"
    speeds = SIR_SPEEDS


class Esi(Dongle):
    """Extended Systems JetEye ESI-9680: the speed is the static level of DTR/RTS."""

    name = "esi"
    description = "Extended Systems JetEye ESI-9680"
    speeds = (9600, 19200, 115200)
    min_turnaround_us = 10000
    LINES: ClassVar[dict[int, tuple[bool, bool]]] = {9600: (False, True), 19200: (True, False), 115200: (True, True)}

    def open(self) -> None:
        self.lines(False, True)
        self.sleep(0.050)
        self.reset()
        self.set_speed(9600)

    def reset(self) -> None:
        self.lines(False, False)
        self.sleep(0.001)
        self.lines(False, True)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.lines(*self.LINES[baud])
        self.port.baudrate = baud
        self.speed = baud


class Girbil(Dongle):
    """Greenwich GIrBIL: command bytes (rate, 0x51) while DTR low / RTS high."""

    name = "girbil"
    description = "Greenwich GIrBIL"
    speeds = SIR_SPEEDS
    min_turnaround_us = 5000
    CODES: ClassVar[dict[int, int]] = {9600: 0x32, 19200: 0x33, 38400: 0x34, 57600: 0x35, 115200: 0x36}

    def reset(self) -> None:
        self.lines(True, False)
        self.sleep(0.020)
        self.lines(False, True)
        self.sleep(0.020)
        self.command(b"\x03")  # transmitter and receiver on
        self.sleep(0.020)
        self.lines(True, True)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.lines(False, True)
        self.sleep(25e-6)
        self.command(bytes((self.CODES[baud], 0x51)))
        self.sleep(0.100)
        self.lines(True, True)
        self.port.baudrate = baud
        self.speed = baud


class Litelink(Dongle):
    """Parallax LiteLink: resets to 115200, then one DTR pulse per step down the speed list."""

    name = "litelink"
    description = "Parallax LiteLink"
    STEPS: ClassVar[tuple[int, ...]] = (115200, 57600, 38400, 19200, 9600)
    speeds = SIR_SPEEDS
    min_turnaround_us = 10
    reset_speed = 115200

    def reset(self) -> None:
        self.lines(True, True)
        self.sleep(25e-6)
        self.lines(True, False)  # RTS low resets
        self.sleep(25e-6)
        self.lines(True, True)
        self.sleep(25e-6)
        self.speed = 115200

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.reset()
        for _ in range(self.STEPS.index(baud)):
            self.lines(False, True)
            self.sleep(25e-6)
            self.lines(True, True)
            self.sleep(25e-6)
        self.port.baudrate = baud
        self.speed = baud


class Ma600(Dongle):
    """MosChip MA600: a command byte while DTR high / RTS low, which the dongle echoes."""

    name = "ma600"
    description = "MosChip MA600"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)
    min_turnaround_us = 10000  # not in its documentation: the conservative 10 ms
    echoes = True
    CODES: ClassVar[dict[int, int]] = {2400: 0x08, 9600: 0x00, 19200: 0x01, 38400: 0x02, 57600: 0x03, 115200: 0x04}

    def reset(self) -> None:
        self.lines(False, True)
        self.sleep(0.010)
        self.lines(True, True)
        self.sleep(0.010)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        code = self.CODES[baud]
        self.lines(True, False)
        self.sleep(0.001)
        self.port.reset_input_buffer()
        self.command(bytes((code,)))
        self.sleep(0.015)
        echo = self.port.read(1)
        self.lines(True, True)
        self.sleep(0.010)
        if echo != bytes((code,)):
            got = echo.hex() or "nothing"
            raise DongleError(
                f"the MA600 dongle did not confirm {baud} bit/s (sent 0x{code:02x}, got {got}): "
                "is it an MA600? check --dongle"
            )
        self.port.baudrate = baud
        self.speed = baud


class Mcp2120(Dongle):
    """Microchip MCP2120: command bytes (rate, 0x11) while DTR high / RTS low."""

    name = "mcp2120"
    description = "Microchip MCP2120"
    speeds = SIR_SPEEDS
    min_turnaround_us = 10000  # not in its documentation: the conservative 10 ms
    CODES: ClassVar[dict[int, int]] = {9600: 0x87, 19200: 0x8B, 38400: 0x85, 57600: 0x83, 115200: 0x81}

    def open(self) -> None:
        self.lines(True, True)
        self.sleep(0.050)
        self.reset()
        self.set_speed(9600)

    def reset(self) -> None:
        self.lines(True, True)
        self.sleep(0.050)
        self.lines(False, False)
        self.sleep(0.050)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.lines(True, False)
        self.sleep(500e-6)
        self.command(bytes((self.CODES[baud], 0x11)))
        self.sleep(0.100)
        self.lines(False, False)
        self.port.baudrate = baud
        self.speed = baud

    def close(self) -> None:
        try:
            self.lines(True, True)  # reset and inhibit
        except (OSError, ValueError):
            pass


class OldBelkin(Dongle):
    """Belkin F5U100 (old): 9600 only, powered from DTR/RTS."""

    name = "old_belkin"
    description = "Belkin F5U100 (old)"
    speeds = (9600,)
    min_turnaround_us = 10000


class Toim3232(Dongle):
    """Vishay TOIM3232 (IR320ST-2): a command byte while DTR high / RTS low."""

    name = "toim3232"
    description = "Vishay TOIM3232 / IR320ST-2"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)
    min_turnaround_us = 10000
    CODES: ClassVar[dict[int, int]] = {2400: 0x0A, 9600: 0x06, 19200: 0x03, 38400: 0x02, 57600: 0x01, 115200: 0x00}

    def reset(self) -> None:
        self.lines(False, False)
        self.sleep(0.050)
        self.lines(True, True)
        self.sleep(0.010)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self.lines(True, False)
        self.sleep(14e-6)
        self.command(bytes((0x10 | self.CODES[baud],)))
        self.sleep(0.150)
        self.sleep(14e-6)
        self.lines(True, True)
        self.sleep(50e-6)
        self.port.baudrate = baud
        self.speed = baud


class Act200l(Dongle):
    """ACTiSYS ACT-IR200L: register writes (divisor nibbles) while RTS high."""

    name = "act200l"
    description = "ACTiSYS ACT-IR200L"
    speeds = SIR_SPEEDS
    min_turnaround_us = 5000
    INIT = bytes.fromhex("F0D156D074635147" "03")
    DIVISORS: ClassVar[dict[int, int]] = {9600: 0x17, 19200: 0x0B, 38400: 0x05, 57600: 0x03, 115200: 0x01}

    def reset(self) -> None:
        self.lines(True, False)
        self.sleep(0.050)
        self.lines(False, True)
        self.sleep(25e-6)
        self.command(self.INIT)
        self.sleep(0.015)
        self.lines(True, True)
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        divisor = self.DIVISORS[baud]
        self.lines(False, True)
        self.command(bytes((0x80 | divisor & 0x0F, 0x90 | divisor >> 4, 0x15)))
        self.sleep(0.005)
        self.lines(True, True)
        self.port.baudrate = baud
        self.speed = baud


__all__ = [
    "Plain", "Tekram", "Actisys", "ActisysPlus", "Esi", "Girbil", "Litelink", "Ma600", "Mcp2120", "OldBelkin",
    "Toim3232", "Act200l", "DongleError",
]
