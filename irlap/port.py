"""Opening serial ports: every pyserial URL, plus the emulator's ``irsim://``."""

from __future__ import annotations

import errno
import os
import stat
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
        raise PortError(open_failure(url, exc)) from None
    set_low_latency(port)
    return port


def _cause(exc: BaseException) -> str:
    """The innermost reason of ``exc``, once: pyserial wraps the OS error and repeats its errno text
    (``[Errno 2] could not open port X: [Errno 2] No such file or directory: 'X'``)."""
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(inner, OSError) and inner.strerror and not isinstance(inner, serial.SerialException):
            return inner.strerror
        args = getattr(inner, "args", ())
        if type(inner).__name__ == "error" and len(args) == 2 and isinstance(args[1], str):
            return args[1]  # termios.error(errno, text)
        inner = inner.__context__ or inner.__cause__
    code = getattr(exc, "errno", None)
    return os.strerror(code) if isinstance(code, int) else str(exc)


def _errno(exc: BaseException) -> int | None:
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(getattr(inner, "errno", None), int):
            return inner.errno
        inner = inner.__context__ or inner.__cause__
    return None


def open_failure(url: str, exc: BaseException) -> str:
    """Why ``url`` did not open, in one line with what to do: the errno text once, the dialout group only
    for a permission problem, a plain file or directory named as not a serial port."""
    reason = _cause(exc)
    if "option 'control'" in str(exc):
        return (f"cannot open {url}: {reason}; ser2net does not answer RFC 2217 SET_CONTROL: "
                "add ?ign_set_control to the URL")
    if "://" in url:
        return f"cannot open {url}: {reason}"
    code = _errno(exc)
    if os.name == "posix":
        try:
            mode = os.stat(url).st_mode
        except FileNotFoundError:
            return (f"cannot open {url}: no such device; is the adapter plugged in? "
                    "(ls /dev/ttyUSB* /dev/ttyACM* lists USB serial adapters)")
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISCHR(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a regular file" if stat.S_ISREG(mode) else "not a device"
            return (f"cannot open {url}: it is {kind}, not a serial port; give the adapter's device "
                    "(e.g. /dev/ttyUSB0), or leave --port out to use the built-in emulator")
    if code in (errno.EACCES, errno.EPERM):
        return (f"cannot open {url}: permission denied; on Linux, join the dialout group "
                "(sudo usermod -aG dialout $USER, then log in again)")
    if code == errno.ENOTTY or "Could not configure port" in str(exc):
        return f"cannot open {url}: it is not a serial port ({reason})"
    if code == errno.EBUSY:
        return f"cannot open {url}: {reason}; another program holds the port (lsof {url} names it)"
    return f"cannot open {url}: {reason}; check the device path"


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
