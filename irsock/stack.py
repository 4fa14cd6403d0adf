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


class DeviceStack(TinyTP):
    """A stack that serves a device's services inside the engine (no application thread): ``on_event`` sees
    each event once, in the turn it happens. The events also stay for the driver's ``take_events``, which may
    come only after several turns: going over all of them each turn would handle old ones again (a print
    job's data twice)."""

    def __init__(self, station: Station) -> None:
        super().__init__(IrLMP(station))

    def _process(self, now: float) -> None:
        start = len(self._events)
        super()._process(now)
        for event in self._events[start:]:
            self.on_event(event, now)

    def on_event(self, event: object, now: float) -> None:
        """One new event (TinyTP's, or IrLMP's for raw connections); the personality acts on it."""


class VirtualDevice(DeviceStack):
    """A device with something to talk to: a TinyTP echo service, registered in IAS.

    Data received on the echo service is read at once and sent back, so credits flow and a peer sees its
    bytes return.
    """

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.listen(ECHO_LSAP)
        for service in ECHO_SERVICES:
            self.lmp.ias.set(service, "IrDA:TinyTP:LsapSel", P.IasValue.of_int(ECHO_LSAP))

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, TtpReadable) and event.conn in self.connections:
            data = self.recv(event.conn, None, now)
            if data and self.connections[event.conn].open:
                self.send(event.conn, data, now)


def virtual_device_stack(station: Station) -> VirtualDevice:
    return VirtualDevice(station)
