"""IrLPT: printing over infrared (``irda print``) and an IrLPT sink that stores jobs (``irda receive --irlpt``).

An IrLPT connection is raw IrLMP (``IRLMP_IRLPT_MODE``) to the LSAP the printer registers in IAS under class
``IrLPT``, attribute ``IrDA:IrLMP:LsapSel``; the job is the data, and an orderly disconnect ends it. There is no
acknowledgement above the link: "printed" means every byte was acknowledged by the printer's IrLAP before the
disconnect.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from irsock import net
from irsock.apps.transfer import ProgressBar, Summary, TransferError, _DeliveredProgress
from irsock.ircomm import IAS_IRLPT_CLASS
from irsock.net import constants as C

CHUNK = 4096
JOB_LIMIT = 64 * 1024 * 1024  # a sink stores at most this much of one job; the rest is refused


def printer_socket(iface: net.Interface) -> Any:
    sock = iface.socket(C.AF_IRDA, C.SOCK_STREAM)
    sock.setsockopt(C.SOL_IRLMP, C.IRLMP_IRLPT_MODE, 1)
    return sock


def print_file(sock: Any, address: int, path: Path, *, line_rate: Callable[[], float | None], out: TextIO,
               tty: bool | None = None, timeout: float = 30.0) -> Summary:
    """Connect ``sock`` (in IrLPT mode) to the printer's IrLPT service, send ``path``, wait until the printer's
    link has acknowledged every byte (``timeout`` seconds without progress is a TransferError), close in order."""
    sock.connect((address, IAS_IRLPT_CLASS))
    rate = line_rate()  # the link's speed, known once it is up
    size = path.stat().st_size
    bar = ProgressBar(path.name, size, out, tty=tty)
    started = time.monotonic()
    sent = 0
    with _DeliveredProgress(sock, bar, None) as progress, path.open("rb") as source:
        while chunk := source.read(CHUNK):
            sock.sendall(chunk)
            sent += len(chunk)
            progress(sent)
        _wait_delivered(sock, timeout)
    seconds = time.monotonic() - started
    sock.close()  # graceful: the Disconnect follows the data
    return Summary(files=1, bytes=sent, seconds=seconds, line_rate=rate, verified=0, results=[], disconnect=None)


def _wait_delivered(sock: Any, timeout: float) -> None:
    """Until the printer's link acknowledged all we sent; raw IrLMP has no acknowledgement above it."""
    left, deadline = sock.unsent(), time.monotonic() + timeout
    while left:
        time.sleep(0.02)
        now_left = sock.unsent()
        if now_left < left:
            left, deadline = now_left, time.monotonic() + timeout
        elif time.monotonic() > deadline:
            raise TransferError(f"the printer took nothing for {timeout:.0f} s; {left} bytes were not printed")


@dataclass
class Job:
    path: Path
    size: int
    peer: str
    complete: bool

    def as_dict(self) -> dict:
        return {"job": str(self.path), "size": self.size, "from": self.peer, "complete": self.complete}


def irlpt_listener(iface: net.Interface) -> Any:
    """A listening raw IrLMP socket registered in IAS as IrLPT (the printer hint set)."""
    listener = printer_socket(iface)
    listener.bind((IAS_IRLPT_CLASS,))
    listener.listen()
    iface.set_hints(iface.hints | 0x0800)  # Printer
    return listener


def receive_job(conn: Any, peer: str, root: Path, limit: int = JOB_LIMIT) -> Job:
    """Store what one IrLPT connection sends as ``root/irlpt-job-N.prn`` (written under a temporary name,
    renamed when the host ended the job; N never reuses a name)."""
    temporary = root / f".irlpt-{os.getpid()}-{threading.get_ident()}.part"
    size = 0
    complete = False
    try:
        with temporary.open("wb") as sink:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break  # the link broke: what arrived is kept, the job marked incomplete
                if not data:
                    complete = True
                    break
                if size + len(data) > limit:
                    raise TransferError(f"an IrLPT job from {peer} went past {limit} bytes: refused")
                sink.write(data)
                size += len(data)
        target = _free_name(root, "complete" if complete else "partial")
        os.replace(temporary, target)
        return Job(target, size, peer, complete)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        with contextlib.suppress(OSError):
            conn.close()


def _free_name(root: Path, state: str) -> Path:
    number = 1
    while True:
        suffix = ".prn" if state == "complete" else ".partial.prn"
        candidate = root / f"irlpt-job-{number}{suffix}"
        try:
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        return candidate


def serve_jobs(listener: Any, root: Path, *, once: bool = False, report: Any = None, log: Any = None,
               limit: int = JOB_LIMIT) -> int:
    """Accept IrLPT connections one after another (a printer takes one job at a time) and store each;
    ``report(job)`` for every job. Returns the number of jobs; ends on KeyboardInterrupt or after one with
    ``once``. The listener should have a timeout so that Ctrl-C is seen."""
    count = 0
    while True:
        try:
            conn, address = listener.accept()
        except TimeoutError:
            continue
        peer = f"0x{address[0]:08x}" if isinstance(address, tuple) and isinstance(address[0], int) else str(address)
        try:
            job = receive_job(conn, peer, root, limit)
        except TransferError as exc:
            if log is not None:
                log(str(exc))
            continue
        count += 1
        if report is not None:
            report(job)
        if once:
            return count
