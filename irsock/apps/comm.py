"""Virtual serial ports: pseudo-terminals bridged to IrCOMM (``irda comm --pty`` and ``irda comm --serve --pty``).

:class:`CommBridge` is the DTE side (the computer): what a program writes to the PTY's slave (``/dev/pts/N``, or
the ``--link`` symlink such as ``/tmp/ircomm0``) goes to a device's IrCOMM service as cooked user data over a
9-wire socket (``IRLMP_9WIRE_MODE``); what the device sends is readable from the PTY. :class:`CommServer` is the
DCE side: it offers ``IrDA:IrCOMM`` and gives each incoming connection a PTY of its own.

What a PTY carries, and how it maps to IrCOMM (the bridge reads the slave's termios from the master side):

* speed, stop bits, flow control (CRTSCTS, IXON/IXOFF and the START/STOP characters): IrCOMM data rate, data
  format, flow control and XON/XOFF parameters, sent before the data written after the change. Linux PTYs
  force 8 bits without parity, so a program's CS7/PARENB never reach us (the data format says 8 bits, none).
* a program opening the port raises DTR and RTS, its last close drops them (a serial port's HUPCL), and so does
  speed B0 (POSIX's hang-up); the DCE side raises DSR, CTS and CD the same way.
* a PTY has no modem lines: the device's CTS, DSR, RI and CD are reported (``log``, :meth:`as_dict`); with
  CRTSCTS set, the device's CTS off holds what the program writes, as a serial port's UART would.
* a hang-up: the master is closed (the program's descriptor reads EOF and writes fail with EIO) and a new PTY
  takes its place (the ``--link`` symlink moves to it). The bridge hangs up when the link to the device is
  lost while a program has the port open, or when what the program wrote cannot be delivered; an orderly end
  by the device (or a drop while the port is closed) is reported and the connection made again on the next
  open or write. Bytes are never dropped without a hang-up the program can see.
* the link goes up when a program opens the port (or writes) and is dropped after ``idle`` seconds without a
  program holding the port and without traffic, so other programs and devices get the link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any, TextIO

from irsock import ircomm as I
from irsock import net
from irsock.apps.transfer import TransferError, choose_device, describe_device
from irsock.net import constants as C

CONNECT_HINT = "check that the device is in range and its infrared port is on (irda discover lists what answers)"
CLOSED_POLL = 0.05  # seconds between looks at a port no program holds (a hung-up master polls at once)
IDLE_DEFAULT = 30.0  # seconds without a program and without traffic before the link is dropped
CHUNK = 4096

#: termios speed constants to bit/s
SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (
    50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400,
    460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)
    if hasattr(termios, f"B{rate}")}
CHAR_SIZES = {termios.CS5: 0, termios.CS6: 1, termios.CS7: 2, termios.CS8: 3}


def _char(value: Any, default: int) -> int:
    """A c_cc entry (bytes of one character, or an int in non-canonical VMIN/VTIME slots)."""
    if isinstance(value, bytes | bytearray):
        return value[0] if value else default
    return int(value) if isinstance(value, int) else default


def port_settings(attrs: list) -> tuple[dict[str, Any], bool]:
    """IrCOMM port settings from ``termios.tcgetattr`` attributes, and whether DTR may be up (not speed B0)."""
    iflag, _oflag, cflag, _lflag, _ispeed, ospeed, cc = attrs
    data_format = CHAR_SIZES.get(cflag & termios.CSIZE, 3)
    if cflag & termios.CSTOPB:
        data_format |= I.FORMAT_TWO_STOP_BITS
    if cflag & termios.PARENB:
        data_format |= I.FORMAT_PARITY | (I.FORMAT_PARITY_ODD if cflag & termios.PARODD else I.FORMAT_PARITY_EVEN)
    flow = ((I.FLOW_XON_XOFF_IN if iflag & termios.IXOFF else 0) | (I.FLOW_XON_XOFF_OUT if iflag & termios.IXON else 0)
            | (I.FLOW_RTS_CTS_IN | I.FLOW_RTS_CTS_OUT if cflag & termios.CRTSCTS else 0))
    settings = {"data_format": data_format, "flow_control": flow,
                "xon_xoff": bytes((_char(cc[termios.VSTART], 0x11), _char(cc[termios.VSTOP], 0x13)))}
    if ospeed != termios.B0:
        settings["data_rate"] = SPEEDS.get(ospeed, 9600)
    return settings, ospeed != termios.B0


def lines_text(lines: dict[str, bool]) -> str:
    return ", ".join(f"{name.upper()} {'on' if on else 'off'}" for name, on in lines.items())


class PtyPort:
    """A pseudo-terminal whose slave programs open: its master, and the ``link`` symlink to the slave.

    The bridge does not hold the slave itself, so the master shows whether a program has the port open (it is
    hung up, POLLHUP, while nobody does). :meth:`hang_up` closes the master, which the program sees, and puts
    a new PTY in its place."""

    def __init__(self, link: str | None = None) -> None:
        self.link = link
        if link and os.path.lexists(link) and not os.path.islink(link):
            raise FileExistsError(errno.EEXIST, "exists and is not a symlink", link)
        self._lock = threading.Lock()  # swapping the master against reads and writes of the old one
        self.closed = False
        self.master, self.path = self._new()
        self._point_link()

    @staticmethod
    def _new() -> tuple[int, str]:
        master, slave = os.openpty()
        try:
            tty.setraw(master)  # the slave starts raw (a program setting its own modes changes them)
            path = os.ttyname(slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        fcntl.fcntl(master, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
        return master, path

    def _point_link(self) -> None:
        if not self.link:
            return
        temporary = f"{self.link}.{os.getpid()}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        os.symlink(self.path, temporary)
        os.replace(temporary, self.link)  # programs opening the link never find it missing

    def wait(self, timeout: float) -> str:
        """``"data"`` (something to read), ``"idle"`` (held, nothing within ``timeout``) or ``"closed"`` (no
        program has the port open: returns at once)."""
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        try:
            events = poller.poll(timeout * 1000)
        except (OSError, ValueError):
            return "closed"
        if not events:
            return "idle"
        flags = events[0][1]
        if flags & select.POLLIN:
            return "data"
        return "closed"

    def held(self) -> bool:
        """A program has the port open."""
        return self.wait(0) != "closed" if not self.closed else False

    def read(self, size: int = CHUNK) -> bytes:
        with self._lock:
            try:
                return os.read(self.master, size)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return b""  # the program closed the port (or we hung it up) meanwhile
                raise

    def write(self, data: bytes, stop: threading.Event, held: Callable[[], bool]) -> bool:
        """All of ``data`` into the PTY, waiting while the program reads slowly; False when the port was hung
        up, or it filled while no program held it (``held``), or ``stop`` was set."""
        view = memoryview(data)
        while view:
            master = self.master
            with self._lock:
                if master != self.master or self.closed:
                    return False
                try:
                    view = view[os.write(master, view):]
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    return False
            if stop.is_set() or not held():
                return False
            poller = select.poll()
            poller.register(master, select.POLLOUT)
            with contextlib.suppress(OSError, ValueError):
                poller.poll(100)
        return True

    def termios(self) -> list | None:
        """The slave's termios (the master's calls read the slave's on Linux); None when unavailable."""
        try:
            return termios.tcgetattr(self.master)
        except (termios.error, OSError):
            return None

    def hang_up(self) -> str:
        """Close the master (the program's descriptor sees EOF / EIO) and put a new PTY in its place; the old
        path."""
        old_path = self.path
        master, path = self._new()
        with self._lock:
            old, self.master, self.path = self.master, master, path
            with contextlib.suppress(OSError):
                os.close(old)
        self._point_link()
        return old_path

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.master)
        if self.link:
            with contextlib.suppress(OSError):
                if os.path.islink(self.link) and os.readlink(self.link) == self.path:
                    os.unlink(self.link)


class _PortPump:
    """One PTY and one 9-wire socket, pumped both ways by two threads: the part the DTE and DCE sides share."""

    role = "DTE"

    def __init__(self, port: PtyPort, *, idle: float, log: Callable[[str], None]) -> None:
        self.port = port
        self.idle = idle
        self.log = log
        self.sock: Any = None
        self.bytes_in = 0  # from the device to the program
        self.bytes_out = 0  # from the program to the device
        self.hangups = 0
        self.held = False  # a program has the port open
        self.peer_lines: dict[str, bool] | None = None  # the peer's lines, as last reported
        self.last_traffic = time.monotonic()
        self._told: dict[str, Any] = {}  # the settings and lines the peer was last told
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def path(self) -> str:
        return self.port.path

    @property
    def link(self) -> str | None:
        return self.port.link

    def _start_threads(self) -> None:
        self._threads = [threading.Thread(target=self._to_device, name=f"pty->ircomm {self.path}", daemon=True),
                         threading.Thread(target=self._to_pty, name=f"ircomm->pty {self.path}", daemon=True)]
        for thread in self._threads:
            thread.start()

    # --- what the subclasses decide ------------------------------------------------------------------------
    def _socket_for_write(self) -> Any:
        """The socket to send the program's bytes on (None: they cannot be delivered)."""
        return self.sock

    def _lines_for(self, held: bool, line_up: bool) -> dict[str, bool]:
        """Our lines for a port that is held (or not) with a speed other than B0 (or B0)."""
        return {"dtr": held and line_up, "rts": held and line_up}

    def _broken(self, sock: Any, why: str, lost: bool, undelivered: int = 0) -> None:
        """The connection ended (``lost``: not an orderly end; ``undelivered`` bytes the program wrote went
        nowhere): a held port is hung up then, so the program sees it; otherwise the end is reported and the
        connection made again on the next open or write. Only the first report of one socket counts."""
        with self._lock:
            if self.sock is not sock:
                return
            self.sock = None
            self._told = {}
        with contextlib.suppress(OSError):
            sock.close()
        if undelivered:
            why += f"; {undelivered} bytes written were not delivered"
        if (lost or undelivered) and self.held:
            self._hang_up(f"the connection to the device broke ({why})")
        else:
            self.log(f"the IrCOMM connection ended ({why}); it is made again on the next open or write")

    # --- the control channel ---------------------------------------------------------------------------
    def _sync(self, sock: Any) -> None:
        """Tell the peer what changed in the port's termios and in whether a program holds it."""
        attrs = self.port.termios()
        if attrs is None or sock is None:
            return
        settings, line_up = port_settings(attrs)
        changes = dict(settings if self.role == "DTE" else {}, **self._lines_for(self.held, line_up))
        changed = {k: v for k, v in changes.items() if self._told.get(k) != v}
        if not changed:
            return
        try:
            sock.ircomm_set(**changed)
        except OSError as exc:
            self._broken(sock, str(exc), lost=True)
            return
        self._told.update(changed)

    def _report_lines(self, sock: Any) -> None:
        channel = None if sock is None else sock.ircomm
        if channel is None or channel.peer_lines is None:
            return
        lines = channel.peer_dce_lines() if channel.dte else channel.peer_dte_lines()
        if lines != self.peer_lines:
            self.peer_lines = lines
            self.log(f"the {'device' if channel.dte else 'peer'}'s lines: {lines_text(lines)}")

    def _flow_held(self, sock: Any) -> bool:
        """CRTSCTS is set and the device's CTS is off: what the program writes waits (the DTE side only)."""
        return False

    def _hang_up(self, why: str) -> None:
        if self.port.closed:
            return
        old = self.port.hang_up()
        self.hangups += 1
        self.held = False
        self.log(f"hung up {old}: {why}; the port is now {self.port.path}"
                 + (f" ({self.port.link})" if self.port.link else ""))

    # --- the two directions ----------------------------------------------------------------------------
    def _to_device(self) -> None:
        while not self._stop.is_set():
            state = self.port.wait(0 if self._flow_held(self.sock) else 0.1)
            held = state != "closed"
            if held != self.held:
                self.held = held
                self._on_held(held)
            if not held:
                self._check_idle()
                self._stop.wait(CLOSED_POLL)
                continue
            sock = self.sock
            self._sync(sock)
            self._report_lines(sock)
            if self._flow_held(sock):
                self._stop.wait(CLOSED_POLL)
                continue
            if state != "data":
                continue
            data = self.port.read()
            if data:
                self._forward(data)
            else:  # the program closed the port between the poll and the read
                self._stop.wait(CLOSED_POLL)

    def _on_held(self, held: bool) -> None:
        self.log("a program opened the port" if held else "the program closed the port")
        self.last_traffic = time.monotonic()
        self._sync(self.sock)

    def _forward(self, data: bytes) -> None:
        self.last_traffic = time.monotonic()
        try:
            sock = self._socket_for_write()
        except (OSError, TransferError) as exc:
            self._hang_up(f"the device cannot be reached ({exc}); {len(data)} bytes written were not delivered")
            return
        if sock is None:
            self._hang_up(f"there is no connection; {len(data)} bytes written were not delivered")
            return
        self._sync(sock)  # a speed set before this write goes first
        try:
            sock.sendall(data)
            self.bytes_out += len(data)
        except OSError as exc:
            self._broken(sock, f"while writing: {exc}", lost=True, undelivered=len(data))

    def _to_pty(self) -> None:
        while not self._stop.is_set():
            sock = self.sock
            if sock is None:
                self._stop.wait(0.1)
                continue
            try:
                data = sock.recv(CHUNK)
            except OSError as exc:
                if not self._stop.is_set():
                    self._broken(sock, str(exc), lost=self._was_lost(sock))
                continue
            if not data:
                if not self._stop.is_set():
                    self._broken(sock, f"the {'device' if self.role == 'DTE' else 'peer'} closed the connection",
                                 lost=False)
                continue
            self.bytes_in += len(data)
            self.last_traffic = time.monotonic()
            self._report_lines(sock)
            if not self.port.write(data, self._stop, self.port.held) and not self._stop.is_set():
                self.log(f"{len(data)} bytes from the device were dropped: no program has the port open and "
                         "its buffer is full")

    @staticmethod
    def _was_lost(sock: Any) -> bool:
        """Whether a connection ended otherwise than by an orderly close (ours or the peer's)."""
        from irsock.lmp import pdu as P

        impl = getattr(sock, "_impl", None)
        reason = getattr(impl, "disconnect_reason", None)
        if getattr(impl, "closed", False) or reason is None:
            return False
        return reason != P.DisconnectReason.USER_REQUEST

    def _check_idle(self) -> None:
        sock = self.sock
        if sock is None or self.idle <= 0 or time.monotonic() - self.last_traffic < self.idle:
            return
        with self._lock:
            if self.sock is not sock:
                return
            self.sock = None
            self._told = {}
        with contextlib.suppress(OSError):
            sock.close()
        self.log(f"no program and no traffic for {self.idle:g} s: the IrCOMM connection is closed (and with it "
                 "the link); it is made again when a program opens the port")

    def serve_forever(self) -> None:
        """Until interrupted (or close() from another thread)."""
        self._stop.wait()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(2.0)
        self.port.close()


class CommBridge(_PortPump):
    """One PTY bridged to ``IrDA:IrCOMM`` of one device (the one named by ``to``, else the one with the IrCOMM
    hint). ``start()`` connects and starts the two pumping threads; ``close()`` ends the connection and the PTY."""

    def __init__(self, iface: net.Interface, *, to: str | None = None, link: str | None = None,
                 timeout: float = 10.0, idle: float = IDLE_DEFAULT, log: Callable[[str], None] | None = None) -> None:
        super().__init__(PtyPort(link), idle=idle, log=log or (lambda _text: None))
        self.iface = iface
        self.to = to
        self.timeout = timeout
        self.device: net.IrdaDevice | None = None
        self.reconnects = 0

    # --- the connection --------------------------------------------------------------------------------
    def connect(self) -> None:
        """Find the device (first time) and connect a 9-wire socket to its IrCOMM service; the hello carries
        the port's settings and lines as they are now."""
        sock = self.iface.socket(C.AF_IRDA, C.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(C.SOL_IRLMP, C.IRLMP_9WIRE_MODE, 1)
            attrs = self.port.termios()
            if attrs is not None:
                settings, line_up = port_settings(attrs)
                channel = sock.ircomm
                for name, value in settings.items():
                    setattr(channel.settings, name, value)
                channel.dtr = channel.rts = self.port.held() and line_up
                self._told = dict(settings, dtr=channel.dtr, rts=channel.rts)
            if self.device is None:
                self.device = choose_device(sock, self.to, log=self.log, hint=CONNECT_HINT, kind="IrCOMM",
                                            iface=self.iface)
            sock.connect((self.device.address, I.IAS_CLASS))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self.sock = sock
        self.peer_lines = None
        self.last_traffic = time.monotonic()
        self.log(f"connected to {describe_device(self.device)} ({I.IAS_CLASS}, 9-wire)")

    def start(self) -> CommBridge:
        self.connect()
        self._start_threads()
        return self

    def _socket_for_write(self) -> Any:
        """The connected socket, connecting again if the last one ended (reported through ``log``)."""
        with self._lock:
            if self.sock is None:
                self.reconnects += 1
                self.connect()
            return self.sock

    def _on_held(self, held: bool) -> None:
        super()._on_held(held)
        if held and self.sock is None:  # the link comes up when a program opens the port
            try:
                self._socket_for_write()
            except (OSError, TransferError) as exc:
                self.log(f"cannot reach the device yet ({exc}); trying again on the next write")

    def _flow_held(self, sock: Any) -> bool:
        attrs = self.port.termios()
        return (attrs is not None and bool(attrs[2] & termios.CRTSCTS) and self.peer_lines is not None
                and not self.peer_lines.get("cts", True))

    def as_dict(self) -> dict:
        device = self.device
        return {"pty": self.path, "link": self.link, "device": None if device is None else {
            "address": device.address, "address_hex": f"0x{device.address:08x}", "name": device.name},
            "service": I.IAS_CLASS, "mode": "9-wire", "lines": self.peer_lines}


class ServedPort(_PortPump):
    """The DCE side of one incoming connection: its own PTY; a program holding it raises DSR, CTS and CD. The
    connection ending closes the PTY for good (the program sees the hang-up)."""

    role = "DCE"

    def __init__(self, sock: Any, peer: Any, *, link: str | None, log: Callable[[str], None],
                 on_end: Callable[[ServedPort], None]) -> None:
        super().__init__(PtyPort(link), idle=0, log=log)
        self.sock = sock
        self.peer = peer
        self.on_end = on_end
        with contextlib.suppress(OSError):  # nobody holds the new port yet: say so (a DCE starts with them on)
            sock.ircomm_set(**self._lines_for(False, True))
            self._told = self._lines_for(False, True)

    def _lines_for(self, held: bool, line_up: bool) -> dict[str, bool]:
        up = held and line_up
        return {"dsr": up, "cts": up, "cd": up}

    def _broken(self, sock: Any, why: str, lost: bool, undelivered: int = 0) -> None:
        with self._lock:
            if self.sock is not sock:
                return
            self.sock = None
        if undelivered:
            why += f"; {undelivered} bytes written were not delivered"
        self.log(f"the connection from {self.peer[0]:#010x} ended ({why}); {self.path} is closed")
        self._stop.set()
        with contextlib.suppress(OSError):
            sock.close()
        self.port.close()  # the program's descriptor sees the hang-up
        self.on_end(self)

    def as_dict(self) -> dict:
        return {"event": "connected", "pty": self.path, "link": self.link,
                "peer": {"address": self.peer[0], "address_hex": f"0x{self.peer[0]:08x}"},
                "service": I.IAS_CLASS, "mode": "9-wire"}


class CommServer:
    """``irda comm --serve``: offer ``IrDA:IrCOMM`` (9-wire and 3-wire cooked, with the IrCOMM hint) and bridge
    each incoming connection to a PTY of its own (``link`` points at the newest)."""

    def __init__(self, iface: net.Interface, *, link: str | None = None, log: Callable[[str], None] | None = None,
                 on_port: Callable[[ServedPort], None] | None = None) -> None:
        self.iface = iface
        self.link = link
        if link and os.path.lexists(link) and not os.path.islink(link):
            raise FileExistsError(errno.EEXIST, "exists and is not a symlink", link)
        self.log = log or (lambda _text: None)
        self.on_port = on_port or (lambda _port: None)
        self.ports: list[ServedPort] = []
        self.listener: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hints = 0

    def start(self) -> CommServer:
        listener = self.iface.socket(C.AF_IRDA, C.SOCK_STREAM)
        try:
            listener.setsockopt(C.SOL_IRLMP, C.IRLMP_9WIRE_MODE, 1)
            listener.bind((I.IAS_CLASS,))
            listener.listen(4)
        except BaseException:
            listener.close()
            raise
        self.listener = listener
        self._hints = self.iface.hints
        self.iface.set_hints(self._hints | C.LM_HB_Extension << 8 | C.LM_HB2_IrCOMM)  # found by irda comm
        self._thread = threading.Thread(target=self._accept, name="ircomm serve", daemon=True)
        self._thread.start()
        self.log(f"offering {I.IAS_CLASS} (LSAP {listener.lsap_sel}) as 0x{self.iface.address:08x}")
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self.listener.accept()
            except OSError as exc:
                if not self._stop.is_set():
                    self.log(f"the listener failed: {exc}")
                    self._stop.set()
                return
            port = ServedPort(sock, peer, link=self.link, log=self.log, on_end=self._ended)
            self.ports.append(port)
            port._start_threads()
            self.log(f"0x{peer[0]:08x} connected: {port.path}" + (f" ({port.link})" if port.link else ""))
            self.on_port(port)

    def _ended(self, port: ServedPort) -> None:
        with contextlib.suppress(ValueError):
            self.ports.remove(port)

    def serve_forever(self) -> None:
        self._stop.wait()

    def close(self) -> None:
        if self._stop.is_set() and self.listener is None:
            return
        self._stop.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
            self.listener = None
            with contextlib.suppress(Exception):
                self.iface.set_hints(self._hints)
        for port in list(self.ports):
            port.close()
        if self._thread is not None:
            self._thread.join(2.0)

    def as_dict(self) -> dict:
        return {"serving": I.IAS_CLASS, "address": self.iface.address,
                "address_hex": f"0x{self.iface.address:08x}", "link": self.link, "mode": "9-wire"}


def stderr_log(out: TextIO = sys.stderr) -> Callable[[str], None]:
    return lambda text: print(f"irda comm: {text}", file=out, flush=True)
