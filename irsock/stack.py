"""The full irsock stack on a station, and the virtual device the emulator places on a medium."""

from __future__ import annotations

from irlap.station import Station
from irsock.lmp import pdu as P
from irsock.lmp.stack import IrLMP
from irsock.ttp import TinyTP, TtpReadable

ECHO_LSAP = 0x02
ECHO_SERVICES = ("IrDA:IrCOMM", "Echo")


def full_stack(station: Station) -> TinyTP:
    """IrLMP (with its IAS server) and TinyTP above ``station``."""
    return TinyTP(IrLMP(station))


class VirtualDevice(TinyTP):
    """A device with something to talk to: a TinyTP echo service, registered in IAS.

    It runs entirely inside the stack (no application thread): data received on the echo service
    is read at once and sent back, so credits flow and a peer sees its bytes return.
    """

    def __init__(self, station: Station) -> None:
        super().__init__(IrLMP(station))
        self.listen(ECHO_LSAP)
        for service in ECHO_SERVICES:
            self.lmp.ias.set(service, "IrDA:TinyTP:LsapSel", P.IasValue.of_int(ECHO_LSAP))

    def _process(self, now: float) -> None:
        super()._process(now)
        for event in list(self._events):
            if isinstance(event, TtpReadable) and event.conn in self.connections:
                data = self.recv(event.conn, None, now)
                if data and self.connections[event.conn].open:
                    self.send(event.conn, data, now)


def virtual_device_stack(station: Station) -> VirtualDevice:
    return VirtualDevice(station)
