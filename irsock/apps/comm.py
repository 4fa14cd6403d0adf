"""A virtual serial port: a pseudo-terminal bridged to a device's IrCOMM service (``irda comm --pty``).

What a program writes to the PTY's slave (``/dev/pts/N``, or the ``--link`` symlink such as ``/tmp/ircomm0``)
goes to the device as cooked IrCOMM user data over a 9-wire socket (``IRLMP_9WIRE_MODE``); what the device
sends is readable from the PTY. The bridge keeps the slave open itself, so a program may open and close the
port as often as it likes (gammu opens it once per command) without the PTY going away. A connection that
breaks is reported and made again on the program's next write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
import threading
import tty
from collections.abc import Callable
from typing import Any, TextIO

from irsock import net
from irsock.apps.transfer import TransferError, choose_device, describe_device
from irsock.ircomm import IAS_CLASS
from irsock.net import constants as C

CONNECT_HINT = "check that the device is in range and its infrared port is on (irda discover lists what answers)"


class CommBridge:
    """One PTY bridged to ``IrDA:IrCOMM`` of one device (the one named by ``to``, else the one with the IrCOMM
    hint). ``start()`` connects and starts the two pumping threads; ``close()`` ends the connection and the PTY."""

    def __init__(self, iface: net.Interface, *, to: str | None = None, link: str | None = None,
                 timeout: float = 10.0, log: Callable[[str], None] | None = None) -> None:
        self.iface = iface
        self.to = to
        self.timeout = timeout
        self.log = log or (lambda _text: None)
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.link = link
        if link:
            with contextlib.suppress(FileNotFoundError):
                if os.path.islink(link):
                    os.unlink(link)
            os.symlink(self.path, link)
        self.device: net.IrdaDevice | None = None
        self.sock: Any = None
        self.bytes_in = 0  # from the device to the program
        self.bytes_out = 0  # from the program to the device
        self.reconnects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- the connection --------------------------------------------------------------------------------
    def connect(self) -> None:
        """Find the device (first time) and connect a 9-wire socket to its IrCOMM service."""
        sock = self.iface.socket(C.AF_IRDA, C.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(C.SOL_IRLMP, C.IRLMP_9WIRE_MODE, 1)
            if self.device is None:
                self.device = choose_device(sock, self.to, log=self.log, hint=CONNECT_HINT, kind="IrCOMM")
            sock.connect((self.device.address, IAS_CLASS))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self.sock = sock
        self.log(f"connected to {describe_device(self.device)} ({IAS_CLASS}, 9-wire)")

    def start(self) -> CommBridge:
        self.connect()
        self._threads = [threading.Thread(target=self._to_device, name=f"pty->ircomm {self.path}", daemon=True),
                         threading.Thread(target=self._to_pty, name=f"ircomm->pty {self.path}", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _socket(self) -> Any:
        """The connected socket, connecting again if the last one broke (reported through ``log``)."""
        with self._lock:
            if self.sock is None:
                self.reconnects += 1
                self.connect()
            return self.sock

    def _broken(self, sock: Any, exc: BaseException) -> None:
        with self._lock:
            if self.sock is sock:
                self.log(f"the IrCOMM connection broke ({exc}); it is made again on the next write")
                self.sock = None
                with contextlib.suppress(OSError):
                    sock.close()

    # --- the two directions ----------------------------------------------------------------------------
    def _to_device(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return  # the PTY is closed: we are stopping
            if not data:
                continue
            try:
                sock = self._socket()
            except (OSError, TransferError) as exc:
                self.log(f"cannot reach the device: {exc}; {len(data)} bytes from the program dropped")
                continue
            try:
                sock.sendall(data)
                self.bytes_out += len(data)
            except OSError as exc:
                self._broken(sock, exc)
                self.log(f"{len(data)} bytes from the program were not delivered")

    def _to_pty(self) -> None:
        while not self._stop.is_set():
            sock = self.sock
            if sock is None:
                self._stop.wait(0.1)
                continue
            try:
                data = sock.recv(4096)
            except OSError as exc:
                if not self._stop.is_set():
                    self._broken(sock, exc)
                continue
            if not data:
                if not self._stop.is_set():
                    self._broken(sock, "the device closed the connection")
                continue
            self.bytes_in += len(data)
            try:
                os.write(self.master, data)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    return

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
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.link:
            with contextlib.suppress(OSError):
                if os.path.islink(self.link) and os.readlink(self.link) == self.path:
                    os.unlink(self.link)

    def as_dict(self) -> dict:
        device = self.device
        return {"pty": self.path, "link": self.link, "device": None if device is None else {
            "address": device.address, "address_hex": f"0x{device.address:08x}", "name": device.name},
            "service": IAS_CLASS, "mode": "9-wire"}


def stderr_log(out: TextIO = sys.stderr) -> Callable[[str], None]:
    return lambda text: print(f"irda comm: {text}", file=out, flush=True)
