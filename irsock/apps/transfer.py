"""File transfer over the socket layer: find an OBEX peer, push with a progress display, run an inbox.

This is what ``irda send``, ``irda receive`` and ``irda demo`` are made of. The OBEX protocol itself
lives in :mod:`irsock.obex`; here are the parts around it that a user sees: which device to push to,
how the transfer goes (bytes, rate, ETA), what arrived and whether it was verified, and how fast it was
against the line rate.
"""

from __future__ import annotations

import os
import socket as _socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from irlap import framing
from irsock import net
from irsock.net import constants as C
from irsock.net.values import parse_address

if TYPE_CHECKING:  # irsock.obex (11 ms) is imported where a session starts: irda send loads it during the discovery
    from irsock.obex import PushResult, ReceivedFile

OBEX_HINTS = 0x8420  # Computer + extension, OBEX: what a receiving irsock announces
TINYTP_ATTRIBUTE = C.TINYTP_LSAP_ATTRIBUTE
MAX_SESSIONS = 8  # sessions served at once; one more is refused with 0xD3 Service Unavailable
IDLE_TIMEOUT_S = 60.0  # a session whose peer sends nothing for this long is closed


class TransferError(Exception):
    """A transfer problem the user can act on (printed as one line by the CLI)."""


# --- progress ---------------------------------------------------------------------------------------
def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """Bytes, rate and ETA of one file: a live line drawn by ``rich`` on a terminal, plain lines every 10% otherwise.

    On a terminal the line is name, bar, percentage, bytes, rate and ETA (``in M:SS`` once done), fitted to
    the terminal's width: the name is shortened with an ellipsis and the bar narrowed or left out before
    anything wraps, and each redraw clears the line first. Elsewhere (a pipe, a log, ``--json`` with
    progress on stderr) it writes ``NAME: PERCENT BYTES/TOTAL RATE ETA`` every 10%. The rate is the
    average since the start of the file; what counts as sent is the caller's business (see
    :class:`_DeliveredProgress`).
    """

    BAR_WIDTH = 30  # the widest bar; it gets narrower first when the line would not fit
    MIN_BAR = 10  # below this the bar is left out
    MIN_NAME = 8  # the name keeps this many columns; the figures are cut first on a very narrow terminal

    def __init__(self, label: str, total: int, stream: TextIO | None = None, *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, console: Any = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or (console.file if console is not None else sys.stdout)
        if tty is None:
            tty = console.is_terminal if console is not None else self.stream.isatty()
        self.tty = tty
        self.console = console
        self.clock = clock
        self.started = clock()
        self.sent = 0
        self._last_draw = 0.0
        self._next_step = 10
        self._live: Any = None  # the rich Progress, once drawn

    def __call__(self, sent: int, total: int | None = None) -> None:
        self.sent = sent
        if total:
            self.total = total
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= 0.1 or sent >= self.total:
                self._last_draw = now
                self._draw(now)
            return
        percent = 100 * sent // self.total if self.total else 100
        if percent >= self._next_step:
            while self._next_step <= percent:
                self._next_step += 10
            self.stream.write(self.render(now) + "\n")
            self.stream.flush()

    def figures(self, now: float | None = None) -> str:
        """``PERCENT BYTES/TOTAL RATE/s ETA M:SS`` (``in M:SS`` once everything is sent)."""
        elapsed = max(1e-9, (now if now is not None else self.clock()) - self.started)
        rate = self.sent / elapsed
        fraction = self.sent / self.total if self.total else 1.0
        text = f"{fraction:4.0%} {_size(self.sent)}/{_size(self.total)} {_size(rate)}/s"
        if self.sent >= self.total:
            return text + f" in {_duration(elapsed)}"
        return text + (f" ETA {_duration((self.total - self.sent) / rate)}" if rate > 0 else " ETA -:--")

    def render(self, now: float | None = None) -> str:
        """The plain line: ``NAME: PERCENT BYTES/TOTAL RATE/s ETA M:SS``."""
        return f"{self.label}: {self.figures(now)}"

    def _start(self) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        console = self.console or Console(file=self.stream, force_terminal=True, highlight=False)
        self._name = TextColumn("{task.description}", markup=False,
                                table_column=Column(no_wrap=True, overflow="ellipsis"))
        self._bar = BarColumn(bar_width=self.BAR_WIDTH)
        self._figures = TextColumn("{task.fields[figures]}", markup=False,
                                   table_column=Column(no_wrap=True, overflow="ellipsis"))
        progress = Progress(self._name, self._bar, self._figures, console=console, auto_refresh=False,
                            redirect_stdout=False, redirect_stderr=False, get_time=self.clock)
        self._task = progress.add_task(self.label, total=self.total or 1, figures="")
        return progress

    def _fit(self, width: int, figures: str) -> None:
        """Share ``width`` columns between name, bar and figures so that the line never wraps.

        One column stays spare (a full line wraps on some terminals). The figures come first, then the
        name (shortened with an ellipsis, at least ``MIN_NAME`` columns), then the bar in what is left.
        """
        room = width - 1
        name = min(len(self.label), max(self.MIN_NAME, room - 1 - len(figures)))
        # the bar keeps its width while the figures grow (ETA 9:59 at 9.5 kB/s, then 10.0 kB/s in 0:10)
        widest = max(len(figures), len(f"100% {_size(self.total)}/{_size(self.total)} 999.9 kB/s ETA 00:00"))
        bar = min(self.BAR_WIDTH, room - widest - 1 - min(len(self.label), 16) - 1)
        if bar >= self.MIN_BAR:
            self._bar.bar_width = bar
            self._live.columns = (self._name, self._bar, self._figures)
            name = min(len(self.label), room - widest - bar - 2)
            rest = room - name - bar - 2
        else:
            self._live.columns = (self._name, self._figures)
            rest = room - name - 1
        self._name.get_table_column().width = name
        self._figures.get_table_column().width = max(1, min(len(figures), rest))

    def _draw(self, now: float) -> None:
        figures = self.figures(now)
        if self._live is None:
            self._live = self._start()
            self._fit(self._live.console.width, figures)
            self._live.update(self._task, completed=self.sent, figures=figures)
            self._live.start()  # draws the first state
            return
        self._fit(self._live.console.width, figures)
        self._live.update(self._task, completed=self.sent, total=self.total or 1, figures=figures)
        self._live.refresh()

    def finish(self) -> None:
        if self.tty:
            self._draw(self.clock())
            self._live.stop()  # leaves the last state on its line and moves to the next


# --- summaries -----------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What a push achieved: the figures ``irda send`` prints and the benchmark reports."""

    files: int
    bytes: int
    seconds: float
    line_rate: float | None  # bytes/s the link can carry (framing.data_rate: baud / 10 on SIR), None over TCP
    verified: int = 0
    results: list[PushResult] = field(default_factory=list)
    disconnect: str | None = None  # how the receiver answered DISCONNECT: "ok", "no response: ...", ...

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def efficiency(self) -> float | None:
        return self.rate / self.line_rate if self.line_rate else None

    def describe(self) -> str:
        text = (f"{self.files} file(s), {self.bytes} bytes in {self.seconds:.2f} s: {self.rate:.0f} bytes/s")
        if self.efficiency is not None:
            text += f", {self.efficiency:.0%} of the line rate ({self.line_rate:.0f} bytes/s)"
        if self.files:
            text += f"; {self.verified}/{self.files} verified by the receiver"
        if self.disconnect not in (None, "ok"):
            text += f"; the receiver did not confirm the end of the session ({self.disconnect})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "seconds": round(self.seconds, 4),
                "bytes_per_s": round(self.rate, 1), "line_rate": self.line_rate,
                "efficiency": None if self.efficiency is None else round(self.efficiency, 4),
                "verified": self.verified, "disconnect": self.disconnect,
                "results": [{"name": r.name, "size": r.size, "seconds": round(r.seconds, 4), "verified": r.verified}
                            for r in self.results]}


def line_rate(iface: net.Interface) -> float | None:
    """Bytes per second the connected link carries (10 bits a byte on SIR, 8 at MIR/FIR), None without a link."""
    params = iface.link_params()
    return framing.data_rate(params.baud) if params is not None else None


# --- choosing the peer ------------------------------------------------------------------------------------
def describe_device(device: net.IrdaDevice) -> str:
    return f"0x{device.address:08x} {device.name!r} ({', '.join(device.hint_words) or 'no hints'})"


RECEIVER_HINT = "name one with --to ADDRESS|NICKNAME, or check that the receiver runs (irda receive)"


def choose_device(sock: net.socket, to: str | None = None, rounds: int = 5,
                  log: Callable[[str], None] = lambda _text: None, hint: str = RECEIVER_HINT,
                  kind: str = "OBEX", iface: net.Interface | None = None) -> net.IrdaDevice:
    """The device to talk to: the one named by ``to`` (address or nickname), else the one with the hint bit
    ``kind`` (a hint word: OBEX, IrCOMM, Printer...).

    Discovery repeats up to ``rounds`` times because answers that collide in a slot are lost for that round:
    one device with the hint is taken after a second round, or after the first when ``iface`` (the socket's
    interface) says that round heard nothing garbled, so no second device can have been hidden. A round
    for a named device ends as soon as that device has answered (the slots after its own are not run).
    Several such devices and no choice, or none at all, is a :class:`TransferError` that lists what was seen
    and ends, for none, with ``hint`` (what to check).
    """
    wanted = parse_address(to) if to else None
    seen: dict[int, net.IrdaDevice] = {}
    for _round in range(rounds):
        # named: irsock's ENUMDEVICES argument ends the round once that device answered
        found = sock.getsockopt(C.SOL_IRLMP, C.IRLMP_ENUMDEVICES, to) if to else \
            sock.getsockopt(C.SOL_IRLMP, C.IRLMP_ENUMDEVICES)
        for device in found:
            if device.address not in seen:
                log(f"found {describe_device(device)}")
            seen[device.address] = device
        if to:
            named = [d for d in seen.values() if d.address == wanted or d.name == to]
            if named:
                return named[0]
            continue
        candidates = [d for d in seen.values() if kind in d.hint_words]
        last = iface.last_round if iface is not None else None
        clean = last is not None and not last.garbled and not last.ended_early
        if len(candidates) == 1 and (_round >= 1 or clean):  # a second round gives hidden colliders a chance
            return candidates[0]
        if len(candidates) > 1:
            break
    candidates = [d for d in seen.values() if kind in d.hint_words]
    listing = "; ".join(describe_device(d) for d in seen.values()) or "none"
    if to:
        if wanted is not None:  # an address that did not answer discovery may still be reachable
            return net.IrdaDevice(wanted, to, 0, 0, 0)
        raise TransferError(f"no device named {to!r} answered discovery ({rounds} rounds); devices seen: {listing}")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise TransferError(f"no device with the {kind} hint in range (devices seen: {listing}); {hint}")
    raise TransferError(f"several {kind} devices in range, choose one with --to: "
                        + "; ".join(describe_device(d) for d in candidates))


def connect_obex(sock: net.socket, address: int, log: Callable[[str], None] = lambda _text: None) -> str:
    """Connect ``sock`` to the OBEX service of ``address`` (IAS class OBEX, then OBEX:IrXfer); the class used."""
    from irsock.obex import IAS_CLASSES

    refused: OSError | None = None
    for service in IAS_CLASSES:
        try:
            lsap = sock.getsockopt(C.SOL_IRLMP, C.IRLMP_IAS_QUERY, net.IasQuery(address, service, TINYTP_ATTRIBUTE))
        except ConnectionRefusedError as exc:
            refused = exc
            continue
        log(f"IAS: {service} {TINYTP_ATTRIBUTE} = {lsap.integer} on 0x{address:08x}")
        sock.connect((address, f"{C.LSAP_SEL_PREFIX}{lsap.integer}"))
        return service
    raise TransferError(f"0x{address:08x} offers no OBEX service ({refused})")


# --- pushing ---------------------------------------------------------------------------------------------
class _DeliveredProgress:
    """Feeds a ProgressBar with the bytes that reached the peer, not the bytes handed to the socket.

    The stack's queues (TinyTP send buffer, IrLMP, the IrLAP window) take the first 10-20 kB at once;
    counting those as sent would show megabytes per second at the start and a stall at the end. So the
    display shows ``handed over - sock.unsent()``, refreshed by a ticker while the queues drain.
    ``on_progress`` still gets the bytes handed over, in the sending thread.
    """

    TICK_S = 0.25

    def __init__(self, sock: Any, bar: ProgressBar, on_progress: Callable[[int], None] | None) -> None:
        self.sock = sock
        self.bar = bar
        self.on_progress = on_progress
        self.handed = 0
        self.shown = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> _DeliveredProgress:
        self.ticker.start()
        return self

    def __call__(self, sent: int, total: int | None = None) -> None:
        with self.lock:
            self.handed = sent
            self._refresh()
        if self.on_progress is not None:
            self.on_progress(sent)

    def _refresh(self) -> None:
        unsent = getattr(self.sock, "unsent", None)
        waiting = unsent() if callable(unsent) else 0
        self.shown = max(self.shown, self.handed - waiting)  # never backwards (retransmissions re-queue)
        self.bar(self.shown)

    def _tick(self) -> None:
        while not self.done.wait(self.TICK_S):
            with self.lock:
                if self.handed:
                    self._refresh()

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        self.done.set()
        self.ticker.join()
        if exc_type is None:
            self.bar(self.bar.total)  # the final response came: everything arrived
        self.bar.finish()


def _pdu_size(sock: Any) -> int:
    """The data a TinyTP PDU carries on ``sock``'s link (IRLMP_SEND_PDU_LEN); 0 where it does not apply (TCP)."""
    if getattr(sock, "family", None) not in C.AF_IRDA_ALIASES:
        return 0
    try:
        return int(sock.getsockopt(C.SOL_IRLMP, C.IRLMP_SEND_PDU_LEN))
    except (OSError, TypeError, ValueError):
        return 0


def push_files(sock: Any, files: Iterable[Path], *, rate: float | None, out: TextIO | None = None,
               tty: bool | None = None, digest: bool = True,
               on_progress: Callable[[int], None] | None = None) -> Summary:
    """One OBEX session on a connected stream socket: CONNECT, a PUT per file, DISCONNECT.

    ``on_progress(bytes_sent_of_this_file)`` is called with the progress display (the HIL rig uses it to
    act mid-transfer).
    """
    from irsock.obex import ObexClient
    from irsock.obex import packets as P

    out = out or sys.stdout
    paths = [Path(f) for f in files]
    client = ObexClient(sock, unit=_pdu_size(sock))
    doing = "at OBEX CONNECT"
    try:
        client.connect()
        started = time.monotonic()
        results = []
        for path in paths:
            bar = ProgressBar(path.name, path.stat().st_size, out, tty=tty)
            with _DeliveredProgress(sock, bar, on_progress) as progress:
                doing = f"during {path.name}"
                result = client.put_file(path, progress=progress, digest=digest)
            results.append(result)
    except (P.ObexPeerClosed, ConnectionResetError, BrokenPipeError) as exc:
        if not _closed_by_peer(sock, exc):
            raise
        where = doing
        if doing.startswith("during "):
            where += f" ({progress.shown} of {bar.total} bytes reached it)"
        done = f"; {len(results)} file(s) were received before" if doing != "at OBEX CONNECT" and results else ""
        raise TransferError(f"the receiver closed the session {where}{done}: was it stopped?") from None
    seconds = time.monotonic() - started
    status = client.disconnect()
    return Summary(files=len(results), bytes=sum(r.size for r in results), seconds=seconds, line_rate=rate,
                   verified=sum(1 for r in results if r.verified), results=results, disconnect=status)


def _closed_by_peer(sock: Any, exc: BaseException) -> bool:
    """Did the peer end the session in order (an IrLMP/TinyTP disconnect for a user request, a TCP close)?
    A lost link or a reset by the stack is not that: it keeps its own message."""
    from irsock.lmp import pdu as lmp_pdu

    if getattr(sock, "family", None) != C.AF_IRDA:
        return True  # TCP: the receiver closed or reset the connection
    impl = getattr(sock, "_impl", None)
    reason = getattr(impl, "disconnect_reason", None)
    return reason == lmp_pdu.DisconnectReason.USER_REQUEST and not getattr(impl, "error", None)


def check_files(files: Iterable[str]) -> list[Path]:
    """The files to send, each an existing readable regular file (else a TransferError saying which)."""
    paths = []
    for name in files:
        path = Path(name)
        if not path.exists():
            raise TransferError(f"{name}: no such file")
        if not path.is_file():
            raise TransferError(f"{name}: not a regular file")
        if not os.access(path, os.R_OK):
            raise TransferError(f"{name}: permission denied")
        paths.append(path)
    if not paths:
        raise TransferError("no file to send")
    return paths


# --- receiving ---------------------------------------------------------------------------------------------
def obex_listener(iface: net.Interface) -> net.socket:
    """A listening TinyTP socket registered in our IAS under every OBEX class, with the OBEX hint set."""
    from irsock.obex import IAS_CLASSES

    listener = iface.socket(C.AF_IRDA, C.SOCK_STREAM)
    listener.bind((IAS_CLASSES[0],))
    lsap = listener.lsap_sel
    for service in IAS_CLASSES[1:]:
        listener.setsockopt(C.SOL_IRLMP, C.IRLMP_IAS_SET, net.IasSet(service, TINYTP_ATTRIBUTE, lsap))
    listener.setsockopt(C.SOL_IRLMP, C.IRLMP_HINTS_SET, OBEX_HINTS | (iface.hints & 0x7F00))
    listener.listen()
    return listener


def tcp_listener(spec: str) -> net.socket:
    """A TCP listener for ``[HOST:]PORT`` (default port 650).

    Without a host it listens on 127.0.0.1 only: an inbox is not opened to the network unless the user
    says so (``0.0.0.0:650``).
    """
    host, _, port_text = spec.rpartition(":") if ":" in spec else ("", "", spec)
    port = _tcp_port(port_text, spec, "[HOST:]PORT")
    host = host or "127.0.0.1"
    listener = net.socket(C.AF_INET, C.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        hint = " (ports below 1024 need root; try --tcp-listen 6650)" if port < 1024 else ""
        raise TransferError(f"cannot listen on TCP {host}:{port}: {exc.strerror or exc}{hint}") from None
    listener.listen()
    return listener


def _tcp_port(text: str, spec: str, form: str) -> int:
    """The port in ``text`` (empty: OBEX's 650), or a TransferError naming the expected form."""
    from irsock.obex import OBEX_TCP_PORT

    try:
        port = int(text) if text else OBEX_TCP_PORT
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise TransferError(f"{spec!r}: expected {form} with a port from 0 to 65535")
    return port


def tcp_address(spec: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (or ``[IPv6]:PORT``) -> (host, port), port 650 by default."""
    if spec.startswith("[") and "]" in spec:
        host, _, rest = spec[1:].partition("]")
        return host, _tcp_port(rest.removeprefix(":"), spec, "HOST[:PORT]")
    host, _, port_text = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
    if not host:
        raise TransferError(f"{spec!r}: expected HOST[:PORT]")
    return host, _tcp_port(port_text, spec, "HOST[:PORT]")


def connect_tcp(spec: str, timeout: float | None) -> net.socket:
    """A TCP connection to the OBEX server at ``HOST[:PORT]``; failures say where and what to check."""
    from irsock.obex import OBEX_TCP_PORT

    host, port = tcp_address(spec)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        candidates = _socket.getaddrinfo(host, port, type=_socket.SOCK_STREAM)
    except _socket.gaierror as exc:
        raise TransferError(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
    failure = ""
    for family, _type, _proto, _name, address in candidates:
        sock = net.socket(family, C.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            _no_delay(sock)
            return sock
        except ConnectionRefusedError:
            failure = (f"{where} refused the connection: no OBEX server listens there (OBEX over TCP uses "
                       f"port {OBEX_TCP_PORT}; irda receive --tcp-listen PORT serves another)")
        except TimeoutError:
            failure = f"{where} did not answer within {timeout} s"
        except OSError as exc:
            failure = f"cannot connect to {where}: {exc.strerror or exc}"
        sock.close()
    raise TransferError(failure or f"{host!r} has no address")


def describe_received(received: ReceivedFile) -> str:
    check = {True: "verified", False: "NOT VERIFIED", None: "no checksum sent"}[received.verified]
    return f"received {received.relative or received.name} ({received.size} bytes) from {received.peer}, {check}"


class Stopped(KeyboardInterrupt):
    """The receiver was stopped (Ctrl-C, SIGTERM); ``discarded`` describes the unfinished files removed."""

    def __init__(self, discarded: list[str]) -> None:
        super().__init__()
        self.discarded = discarded


def serve(listener: net.socket, root: Path, *, once: bool = False, max_size: int | None = None,
          report: Callable[[ReceivedFile], None] | None = None, log: Callable[[str], None] = lambda _t: None,
          stop: Callable[[], bool] = lambda: False, browse: bool = False, allow_delete: bool = False,
          max_sessions: int = MAX_SESSIONS, idle_timeout: float = IDLE_TIMEOUT_S) -> list[ReceivedFile]:
    """Accept OBEX sessions and store what they push into ``root``; the files stored.

    Sessions are served at the same time, each by a thread, up to ``max_sessions`` (one more is answered
    0xD3 Service Unavailable and closed), so that a client that connects and goes quiet holds up nobody;
    a session idle for ``idle_timeout`` seconds is closed. ``once`` serves a single session. Stale
    temporary files of a killed receiver are removed first. Nothing a peer sends ends the loop; a
    KeyboardInterrupt (Ctrl-C, SIGTERM in ``irda receive``) ends every session, removes their unfinished
    files, and is raised again as :class:`Stopped`.
    """
    from irsock.obex import ObexServer

    received: list[ReceivedFile] = []
    server = ObexServer(root, max_size=max_size, on_file=report, browse=browse, allow_delete=allow_delete, log=log)
    stale = server.remove_stale_parts()
    if stale:
        log(f"removed {len(stale)} stale partial file(s) left by a receiver that was killed: "
            + ", ".join(str(path.relative_to(server.root)) for path in stale))
    lock = threading.Lock()
    workers: list[threading.Thread] = []

    def session(conn: Any, peer: str) -> None:
        with conn:
            try:
                conn.settimeout(idle_timeout)
                _no_delay(conn)
                files = server.serve(conn, peer=peer)
                with lock:
                    received.extend(files)
            except TimeoutError:
                log(f"session from {peer} closed: idle for {idle_timeout:g} s")
            except OSError as exc:
                log(f"session from {peer} ended: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug in one session must not end the receiver
                log(f"session from {peer} failed: {type(exc).__name__}: {exc}")

    try:
        while not stop():
            workers = [w for w in workers if w.is_alive()]
            if once and workers:
                workers[0].join(0.5)  # interruptible: Ctrl-C still stops at once
                if not workers[0].is_alive():
                    break
                continue
            try:
                conn, address = listener.accept()
            except TimeoutError:
                continue
            peer = _peer_text(address)
            if len(workers) >= max_sessions:
                log(f"refused a session from {peer}: {max_sessions} sessions are already served")
                _refuse_busy(conn, max_sessions)
                continue
            log(f"session from {peer}")
            worker = threading.Thread(target=session, args=(conn, peer), name=f"OBEX session {peer}", daemon=True)
            worker.start()
            workers.append(worker)
    except KeyboardInterrupt:
        discarded = server.cancel()
        _join(workers)
        raise Stopped(discarded) from None
    finally:
        server.cancel()  # stop() or an accept error: nobody is served any more
        _join(workers)
    return received


def _join(workers: list[threading.Thread], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


def _refuse_busy(conn: Any, limit: int) -> None:
    """Answer a session we cannot take with 0xD3 Service Unavailable (with CONNECT's fields, which is what
    the client's first request is), then close; bounded to half a second."""
    from irsock.obex import packets as P

    try:
        with conn:
            conn.settimeout(0.5)
            busy = f"busy: {limit} sessions are already served, try again later"
            conn.sendall(P.build(P.SERVICE_UNAVAILABLE, [(P.H_DESCRIPTION, busy)],
                                 connect=(P.OBEX_VERSION, 0, P.MIN_PACKET)))
            conn.shutdown(_socket.SHUT_WR)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and conn.recv(4096):
                pass  # read what the client sent, so that our close does not reset the answer away
    except OSError:
        pass


class Inbox:
    """One OBEX session served into ``root`` by a thread: the receiving end of a demo, a benchmark or the rig.

    ``with Inbox(obex_listener(iface), root) as inbox:`` push from elsewhere, then ``inbox.wait()`` for the
    files. The thread stays alive until the inbox is closed, so that its CPU time can still be read.
    """

    def __init__(self, listener: net.socket, root: Path, *, browse: bool = False,
                 allow_delete: bool = False) -> None:
        self.listener = listener
        self.root = root
        self.browse = browse
        self.allow_delete = allow_delete
        self.received: list[ReceivedFile] = []
        self.native_id: int | None = None
        self._served = threading.Event()
        self._closing = threading.Event()
        listener.settimeout(0.5)
        self._thread = threading.Thread(target=self._run, name="OBEX inbox", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        try:
            self.received.extend(serve(self.listener, self.root, once=True, stop=self._closing.is_set,
                                       browse=self.browse, allow_delete=self.allow_delete))
        finally:
            self._served.set()
            self._closing.wait()

    def wait(self, timeout: float | None = None) -> list[ReceivedFile]:
        """The files stored, once the session has ended (or what there is after ``timeout``)."""
        self._served.wait(timeout)
        return list(self.received)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.listener.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_delay(sock: Any) -> None:
    """TCP_NODELAY on a TCP connection (nothing on IrDA): OBEX is request/response, and Nagle's algorithm
    with the peer's delayed ACK would hold the last piece of every packet for ~40 ms."""
    if sock.family in (_socket.AF_INET, _socket.AF_INET6):
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)


def _peer_text(address: Any) -> str:
    if isinstance(address, tuple) and len(address) == 2 and isinstance(address[0], int):
        return f"0x{address[0]:08x}"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)
