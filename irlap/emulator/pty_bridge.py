"""PTY serial ports on the emulated medium, for programs that open a real serial device path.

Each bridge owns a pseudo-terminal pair: a program opens the slave (``/dev/pts/N``) like any
serial port; the bridge reads the master side and puts the bytes on an ``irsim`` endpoint with a
plain dongle. Baud-rate changes the program makes through termios are noticed without polling
(EXTPROC + TIOCPKT on the master: a packet with the 0x40 bit announces a termios change; the speed
is also read before each write, for programs that clear EXTPROC) and the endpoint follows, so the
emulated light is at the speed the program chose. PTYs have no DTR/RTS, which is why only plain
dongles can be emulated this way (use ``irsim://`` for the others).
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
import tty

from irlap.emulator.medium import Endpoint, get_medium

EXTPROC = 0o200000  # not exported by Python's termios
TIOCPKT = getattr(termios, "TIOCPKT", 0x5420)
TIOCPKT_IOCTL = 0x40

_SPEEDS = {getattr(termios, f"B{b}"): b for b in (2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
           if hasattr(termios, f"B{b}")}


class PtyBridge:
    """One PTY pair bridged to an endpoint on ``medium``."""

    def __init__(self, medium: str) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        attrs = termios.tcgetattr(self.master)
        attrs[3] |= EXTPROC
        termios.tcsetattr(self.master, termios.TCSANOW, attrs)
        fcntl.ioctl(self.master, TIOCPKT, struct.pack("i", 1))
        self.path = os.ttyname(self.slave)
        self.medium, _created = get_medium(medium)
        self.endpoint: Endpoint = self.medium.attach("plain", name=self.path)
        self.endpoint.set_lines(True, True)
        self._speed = 0
        self._follow_speed()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._to_medium, name=f"pty->irsim {self.path}", daemon=True),
            threading.Thread(target=self._to_pty, name=f"irsim->pty {self.path}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _follow_speed(self) -> None:
        try:
            speed = _SPEEDS.get(termios.tcgetattr(self.master)[5])
        except termios.error:
            return
        if speed and speed != self._speed:
            self._speed = speed
            self.endpoint.set_baud(speed)

    def _to_medium(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                packet = os.read(self.master, 4096)
            except OSError:
                # no program has the slave open (EIO): wait for one
                self._stop.wait(0.05)
                continue
            if not packet:
                continue
            if packet[0] == 0:
                if len(packet) > 1:
                    # a program that clears EXTPROC sends no termios notices: look before every write
                    self._follow_speed()
                    self.endpoint.write(packet[1:])
            elif packet[0] & TIOCPKT_IOCTL:
                self._follow_speed()

    def _to_pty(self) -> None:
        while not self._stop.is_set():
            data = self.endpoint.read(4096, 0.2)
            if data:
                try:
                    os.write(self.master, data)
                except OSError:
                    continue

    def close(self) -> None:
        """Stop bridging and close the PTY (what an unplugged adapter looks like); safe to call twice."""
        if self._stop.is_set():
            return  # the descriptors may already belong to someone else
        self._stop.set()
        self.endpoint.close()
        for thread in self._threads:
            thread.join(1.0)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
