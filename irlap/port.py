"""Opening serial ports: every pyserial URL, plus the emulator's ``irsim://``."""

from __future__ import annotations

import time

import serial

from irlap.errors import IrLAPError

_HANDLERS = "irlap.urlhandler"
if _HANDLERS not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(_HANDLERS)


class PortError(IrLAPError):
    """The serial port cannot be opened or failed (unplugged, busy, no permission)."""


def open_port(url: str, baudrate: int = 9600, timeout: float = 0.05) -> serial.SerialBase:
    """Open ``url`` (``/dev/ttyUSB0``, ``COM3``, ``rfc2217://``, ``socket://``, ``loop://``, ``irsim://``)."""
    # a write that blocks for good means a hung adapter; rfc2217:// (ser2net) cannot bound writes
    write_timeout = None if url.lower().startswith("rfc2217://") else 2.0
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        hint = "" if "://" in url else ("; check the device path and its permissions "
                                        "(on Linux: membership of the dialout group)")
        if "option 'control'" in str(exc):
            hint = "; ser2net does not answer RFC 2217 SET_CONTROL: add ?ign_set_control to the URL"
        raise PortError(f"cannot open {url}: {exc}{hint}") from None
    set_low_latency(port)
    return port


def set_low_latency(port: serial.SerialBase) -> bool:
    """Ask the OS for low latency (USB-serial adapters otherwise buffer up to 16 ms). True if it took."""
    setter = getattr(port, "set_low_latency_mode", None)
    if setter is None:
        return False
    try:
        setter(True)
        return True
    except (OSError, ValueError, NotImplementedError, AttributeError):
        return False


def flush_input(port: serial.SerialBase, baud: int = 9600, settle: float = 0.02, limit: float = 1.0) -> int:
    """Discard the input a port holds from before we opened it; the bytes discarded.

    One flush is not enough everywhere: a PTY (``irda emulate``) keeps pushing bytes written long ago into
    the port after a flush. Bytes that arrive faster than the line can carry them are such a backlog, so the
    flush is repeated until, ``settle`` seconds after the last one, no more than the line could have
    carried meanwhile is waiting (live traffic is kept); at most ``limit`` seconds.
    """
    discarded = 0
    deadline = time.monotonic() + limit
    while True:
        try:
            discarded += port.in_waiting
        except (serial.SerialException, OSError, NotImplementedError):
            pass
        port.reset_input_buffer()
        if time.monotonic() >= deadline:
            return discarded
        time.sleep(settle)
        try:
            waiting = port.in_waiting
        except (serial.SerialException, OSError, NotImplementedError):
            return discarded
        if waiting <= 2 * settle * baud / 10:  # what the line could have carried, with margin
            return discarded
