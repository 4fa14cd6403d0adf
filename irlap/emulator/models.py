"""Behavioural models of SIR dongles, for the emulator: what the dongle does with DTR/RTS and bytes.

A model sees what a real dongle sees: line levels with their times, and bytes from the host UART
at the UART's speed. It decides the infrared speed, swallows control bytes, echoes where the real
dongle echoes, and stays silent where the real one would (powered down, held in reset, not yet
initialised, still switching). A driver for another dongle therefore fails here the way it fails
on hardware: the speeds disagree (garbage) or nothing comes out (silence).

Control bytes reach a dongle's controller at its control speed (9600 bit/s); bytes sent at another
UART speed arrive garbled and are ignored, as on the real part.
"""

from __future__ import annotations

from typing import ClassVar

CONTROL_BAUD = 9600


class DongleModel:
    """Base model: ``lines``/``uart_write`` in, ``ir_speed`` and ``echo`` out."""

    name: ClassVar[str] = "?"

    def __init__(self) -> None:
        self.dtr = False
        self.rts = False
        self.speed: int | None = None  # infrared speed once ready; None = silent
        self.ready_at = 0.0
        self.echo = bytearray()
        self.log: list[tuple[float, str]] = []

    # --- inputs ------------------------------------------------------------------------------------
    def lines(self, dtr: bool, rts: bool, now: float) -> None:
        old = (self.dtr, self.rts)
        self.dtr, self.rts = bool(dtr), bool(rts)
        if old != (self.dtr, self.rts):
            self.log.append((now, f"lines {int(self.dtr)}/{int(self.rts)}"))
            self.on_lines(old, now)

    def uart_write(self, data: bytes, uart_baud: int, now: float) -> bytes:
        """Bytes from the host; returns what goes out as light (empty while in command mode)."""
        if self.command_mode():
            if uart_baud == CONTROL_BAUD:
                self.log.append((now, f"command {bytes(data).hex()}"))
                for byte in data:
                    self.on_command(byte, now)
            else:
                self.log.append((now, f"garbled command at {uart_baud}"))
            return b""
        return bytes(data)

    # --- outputs -----------------------------------------------------------------------------------
    def host_seconds(self, nbytes: int, uart_baud: int) -> float:
        """How long ``nbytes`` from the host take to arrive: a UART's 10 bit times per byte."""
        return nbytes * 10 / uart_baud

    def ir_speed(self, now: float) -> int | None:
        """The speed the dongle sends and receives light at, or None when it cannot (silence)."""
        if not self.powered() or now < self.ready_at or self.command_mode():
            return None
        return self.speed

    # --- per-model behaviour -----------------------------------------------------------------------
    def powered(self) -> bool:
        return self.dtr or self.rts

    def command_mode(self) -> bool:
        return False

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        pass

    def on_command(self, byte: int, now: float) -> None:
        pass


class PlainModel(DongleModel):
    """An adapter without speed control: light at whatever speed the UART runs."""

    name = "plain"

    def __init__(self) -> None:
        super().__init__()
        self.speed = 0  # follows the UART: the emulator reads 0 as "same as the UART"

    def powered(self) -> bool:
        return True


class FastModel(PlainModel):
    """A SIR/MIR/FIR controller whose host does the framing (the emulator's ``fir`` test dongle).

    Up to 115200 bit/s it is a plain SIR adapter (a UART, IR speed = port speed). Set to 576000, 1152000 or
    4000000 bit/s, its host link carries line bytes instead, as a host-framing chip's bus does: MIR's
    bit-stuffed HDLC stream or FIR's 4PPM chips (:mod:`irlap.framing`), paced at the line time of that
    framing, not at 10 bits a byte. No real serial adapter does this (a UART cannot run MIR or FIR): it is the
    emulator's way to run the whole stack at MIR and FIR speeds in real time through ``irsim://``
    (``irsim://M?dongle=fir`` with the ``fir`` driver, :mod:`irlap.emulator.fast`).
    """

    name = "fir"
    SPEEDS: ClassVar[tuple[int, ...]] = (2400, 9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000)

    def host_seconds(self, nbytes: int, uart_baud: int) -> float:
        if uart_baud > 115200:
            from irlap.framing import line_seconds

            return line_seconds(nbytes, uart_baud)
        return super().host_seconds(nbytes, uart_baud)

    def ir_speed(self, now: float) -> int | None:
        return 0  # follows the port: the medium reads 0 as "the host's speed"


class _CommandByteModel(DongleModel):
    """Dongles that take speed command bytes while the lines are in a command pattern."""

    COMMAND_LINES: ClassVar[tuple[bool, bool]] = (True, False)
    NORMAL_LINES: ClassVar[tuple[bool, bool]] = (True, True)
    SETTLE: ClassVar[float] = 0.0
    RESET_LINES: ClassVar[tuple[bool, bool] | None] = (False, True)

    def __init__(self) -> None:
        super().__init__()
        self.pending: int | None = None

    def command_mode(self) -> bool:
        return (self.dtr, self.rts) == self.COMMAND_LINES

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        state = (self.dtr, self.rts)
        if self.RESET_LINES is not None and old == self.RESET_LINES and state == self.NORMAL_LINES:
            self.speed = 9600
            self.pending = None
        if old == self.COMMAND_LINES and state == self.NORMAL_LINES and self.pending is not None:
            self.speed = self.pending
            self.pending = None

    def set_pending(self, speed: int, now: float) -> None:
        self.pending = speed
        self.ready_at = now + self.SETTLE


class TekramModel(_CommandByteModel):
    name = "tekram"
    SETTLE = 0.100
    CODES: ClassVar[dict[int, int]] = {0x14: 9600, 0x13: 19200, 0x12: 38400, 0x11: 57600, 0x10: 115200}

    def on_command(self, byte: int, now: float) -> None:
        if byte in self.CODES:
            self.set_pending(self.CODES[byte], now)


class Toim3232Model(TekramModel):
    name = "toim3232"
    RESET_LINES = (False, False)
    CODES: ClassVar[dict[int, int]] = {0x1A: 2400, 0x16: 9600, 0x13: 19200, 0x12: 38400, 0x11: 57600, 0x10: 115200}

    def powered(self) -> bool:
        return True  # self-powered; reset is both lines low


class Ma600Model(_CommandByteModel):
    name = "ma600"
    SETTLE = 0.010
    CODES: ClassVar[dict[int, int]] = {0x08: 2400, 0x00: 9600, 0x01: 19200, 0x02: 38400, 0x03: 57600, 0x04: 115200}

    def on_command(self, byte: int, now: float) -> None:
        if byte in self.CODES:
            self.echo.append(byte)
            self.set_pending(self.CODES[byte], now)


class Mcp2120Model(_CommandByteModel):
    """Normal operation with both lines low; both high holds it in reset (silent)."""

    name = "mcp2120"
    NORMAL_LINES = (False, False)
    RESET_LINES = (True, True)
    SETTLE = 0.050
    CODES: ClassVar[dict[int, int]] = {0x87: 9600, 0x8B: 19200, 0x85: 38400, 0x83: 57600, 0x81: 115200}

    def __init__(self) -> None:
        super().__init__()
        self.rate: int | None = None

    def powered(self) -> bool:
        return (self.dtr, self.rts) != (True, True)

    def on_command(self, byte: int, now: float) -> None:
        if byte in self.CODES:
            self.rate = self.CODES[byte]
        elif byte == 0x11 and self.rate is not None:
            self.set_pending(self.rate, now)
            self.rate = None


class GirbilModel(_CommandByteModel):
    """Needs the 0x03 "transmitter and receiver on" byte after power-up before it makes any light."""

    name = "girbil"
    COMMAND_LINES = (False, True)
    RESET_LINES = None
    SETTLE = 0.050
    CODES: ClassVar[dict[int, int]] = {0x32: 9600, 0x33: 19200, 0x34: 38400, 0x35: 57600, 0x36: 115200}

    def __init__(self) -> None:
        super().__init__()
        self.enabled = False
        self.rate: int | None = None

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        if not self.powered():
            self.enabled = False
        if old == (True, False) and (self.dtr, self.rts) == self.COMMAND_LINES:
            self.speed = 9600  # the reset pattern: 1/0 then 0/1
        super().on_lines(old, now)

    def ir_speed(self, now: float) -> int | None:
        return super().ir_speed(now) if self.enabled else None

    def on_command(self, byte: int, now: float) -> None:
        if byte == 0x03:
            self.enabled = True
        elif byte in self.CODES:
            self.rate = self.CODES[byte]
        elif byte == 0x51 and self.rate is not None:
            self.set_pending(self.rate, now)
            self.rate = None


class Act200lModel(_CommandByteModel):
    """Needs its register initialisation after power-up; speed by divisor register writes."""

    name = "act200l"
    COMMAND_LINES = (False, True)
    RESET_LINES = None
    SETTLE = 0.002
    DIVISORS: ClassVar[dict[int, int]] = {0x17: 9600, 0x0B: 19200, 0x05: 38400, 0x03: 57600, 0x01: 115200}
    INIT = bytes.fromhex("F0D156D07463514703")

    def __init__(self) -> None:
        super().__init__()
        self.received = bytearray()
        self.initialised = False
        self.low: int | None = None

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        if (self.dtr, self.rts) == (True, False):
            self.received.clear()  # 1/0 resets the controller
            self.initialised = False
        super().on_lines(old, now)

    def ir_speed(self, now: float) -> int | None:
        return super().ir_speed(now) if self.initialised else None

    def on_command(self, byte: int, now: float) -> None:
        if not self.initialised:
            self.received.append(byte)
            if bytes(self.received[-len(self.INIT):]) == self.INIT:
                self.initialised = True
                self.speed = 9600
            return
        if byte & 0xF0 == 0x80:
            self.low = byte & 0x0F
        elif byte & 0xF0 == 0x90 and self.low is not None:
            divisor = (byte & 0x0F) << 4 | self.low
            if divisor in self.DIVISORS:
                self.set_pending(self.DIVISORS[divisor], now)


class _PulseModel(DongleModel):
    """Dongles stepped through a speed list by pulses on one line, after a reset pulse on the other."""

    STEPS: ClassVar[tuple[int, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.step = 0

    def advance(self) -> None:
        self.step = (self.step + 1) % len(self.STEPS)
        self.speed = self.STEPS[self.step]

    def restart(self) -> None:
        self.step = 0
        self.speed = self.STEPS[0]


class ActisysModel(_PulseModel):
    """DTR low resets to 9600; each RTS pulse (with DTR high) steps up."""

    name = "actisys"
    STEPS = (9600, 19200, 57600, 115200)

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        if not old[0] and self.dtr:
            self.restart()
        elif self.dtr and not old[1] and self.rts:
            self.advance()


class ActisysPlusModel(ActisysModel):
    name = "actisys+"
    STEPS = (9600, 19200, 57600, 115200, 38400)


class LitelinkModel(_PulseModel):
    """An RTS pulse (DTR high) resets to 115200; each DTR pulse (RTS high) steps down."""

    name = "litelink"
    STEPS = (115200, 57600, 38400, 19200, 9600)

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        if self.dtr and not old[1] and self.rts:
            self.restart()
        elif self.rts and not old[0] and self.dtr:
            self.advance()


class EsiModel(DongleModel):
    """Speed = static line levels; both low = off."""

    name = "esi"
    LINES: ClassVar[dict[tuple[bool, bool], int]] = {(False, True): 9600, (True, False): 19200, (True, True): 115200}

    def on_lines(self, old: tuple[bool, bool], now: float) -> None:
        self.speed = self.LINES.get((self.dtr, self.rts))


class OldBelkinModel(DongleModel):
    name = "old_belkin"

    def __init__(self) -> None:
        super().__init__()
        self.speed = 9600


MODELS: dict[str, type[DongleModel]] = {
    cls.name: cls
    for cls in (PlainModel, FastModel, TekramModel, ActisysModel, ActisysPlusModel, EsiModel, GirbilModel,
                LitelinkModel, Ma600Model, Mcp2120Model, OldBelkinModel, Toim3232Model, Act200lModel)
}


def make_model(name: str) -> DongleModel:
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"no emulated model of the {name!r} dongle; models: {', '.join(MODELS)}") from None
