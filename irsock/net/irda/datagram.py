"""SOCK_DGRAM on AF_IRDA: IrLMP connectionless data (PID 0x01), heard by every socket bound for it."""

from __future__ import annotations

import errno
from collections import deque
from typing import Any

from irsock.lmp import pdu as P
from irsock.lmp.stack import ConnectionlessData
from irsock.net import constants as C
from irsock.net.errors import invalid, no_flags, not_connected, os_error, reset, too_long
from irsock.net.irda.endpoint import IrdaEndpoint
from irsock.net.values import bound_service, device_address

DGRAM_PID = 0x01
MAX_DATAGRAM = 2045  # an IrLMP connectionless PDU in the smallest IrLAP frame that carries it
RECEIVE_QUEUE = 64  # datagrams kept for a reader; more are dropped (and counted), as UDP does when its buffer is full


class IrdaDatagram(IrdaEndpoint):
    """An IrLMP datagram socket: ``sendto`` reaches every peer on the link, ``recvfrom`` says the PID."""

    def __init__(self, iface: Any, type_: int, proto: int) -> None:
        super().__init__(iface, type_, proto)
        self.dgrams: deque = deque()
        self.dropped = 0  # datagrams that found the queue full

    def ready(self) -> bool:
        return bool(self.dgrams) or super().ready()

    def on_data_event(self, event: Any) -> None:
        if isinstance(event, ConnectionlessData):
            if len(self.dgrams) >= RECEIVE_QUEUE:
                self.dropped += 1
            else:
                self.dgrams.append((event.data, event.pid))

    def bind(self, address: Any) -> None:
        if self.local_lsap is not None:
            raise invalid("the socket is already bound")
        self.name = bound_service(address)
        self.local_lsap = P.LSAP_CONNECTIONLESS
        self.iface.register(("dgram", None), self)

    def connect(self, address: Any) -> None:
        """Only names the default peer for send(): datagrams go to every device on the link anyway."""
        if self.connected:
            raise os_error(OSError, errno.EISCONN, C.WSAEISCONN, "the socket is already connected")
        if not isinstance(address, tuple) or len(address) != 2:
            raise invalid("AF_IRDA addresses are (device_address, 'ServiceName' or 'LSAP-SELn')")
        self.peer = (device_address(address[0]), str(address[1]))
        self.connected = True

    def send(self, data: bytes, flags: int = 0) -> int:
        no_flags(flags)
        return self.sendto(bytes(data), self.peer)

    def sendto(self, data: bytes, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``; IrLMP datagrams go to every peer."""
        no_flags(args[0] if len(args) == 2 else 0)
        if len(data) > MAX_DATAGRAM:
            raise too_long(f"IrLMP datagrams carry at most {MAX_DATAGRAM} bytes")
        self._call(lambda stack, now: stack.lmp.send_connectionless(DGRAM_PID, bytes(data), now))
        return len(data)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.recvfrom(bufsize, flags)[0]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        no_flags(flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        if self.local_lsap is None:
            self.bind(("",))
        self._wait(lambda: bool(self.dgrams) or self.error is not None, "receiving a datagram")
        with self.iface.cond:
            if not self.dgrams:
                raise reset(self.error or "interface down")
            data, pid = self.dgrams.popleft()
            self._update_flag()
        return data[:bufsize], (0, f"PID{pid}")

    def unsent(self) -> int:
        return 0

    def shutdown(self, how: int) -> None:
        raise not_connected()

    def close(self) -> None:
        if self.closed:
            return
        self.iface.unregister(("dgram", None))
        self._close_endpoint()
