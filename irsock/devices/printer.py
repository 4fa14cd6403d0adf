"""The emulated printer: an IrLPT sink (IAS ``IrLPT`` / ``IrDA:IrLMP:LsapSel``, raw IrLMP, no TinyTP).

IrLPT is the simplest infrared service: the host connects an IrLMP LSAP in exclusive use and sends the print
job as plain IrLMP data; the job ends when the host disconnects. Each job is kept in memory (the last
:data:`KEPT_JOBS`, each up to :data:`JOB_LIMIT` bytes; what a host sends past that is counted, not kept), so
that tests and ``irda print`` users can check what arrived.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from irlap.station import Station
from irsock.ircomm import IAS_IRLPT_CLASS
from irsock.lmp import pdu as P
from irsock.lmp.stack import LmpConnectIndication, LmpData, LmpDisconnected
from irsock.stack import DeviceStack

PRINTER_LSAP = 0x03
IRLMP_LSAP_ATTRIBUTE = "IrDA:IrLMP:LsapSel"
KEPT_JOBS = 16
JOB_LIMIT = 16 * 1024 * 1024


@dataclass
class PrintJob:
    device: int
    data: bytearray = field(default_factory=bytearray)
    received: int = 0  # bytes the host sent (more than len(data) when it went past JOB_LIMIT)
    complete: bool = False  # the host ended the job with a user-request disconnect
    reason: str = ""


class Printer(DeviceStack):
    """The printer's stack: a raw IrLMP listener on LSAP 3, registered in IAS as IrLPT; jobs in ``jobs``."""

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.lmp.listen(PRINTER_LSAP, "raw")
        self.lmp.ias.set(IAS_IRLPT_CLASS, IRLMP_LSAP_ATTRIBUTE, P.IasValue.of_int(PRINTER_LSAP))
        self.jobs: deque[PrintJob] = deque(maxlen=KEPT_JOBS)
        self._open: dict[tuple[int, int], PrintJob] = {}

    def on_event(self, event: object, now: float) -> None:
        match event:
            case LmpConnectIndication(owner="raw") if event.local == PRINTER_LSAP:
                self.lmp.confirm(event.local, event.remote, now)
                job = PrintJob(event.device)
                self._open[(event.local, event.remote)] = job
                self.jobs.append(job)
            case LmpData(owner="raw") if (event.local, event.remote) in self._open:
                job = self._open[(event.local, event.remote)]
                job.received += len(event.data)
                room = JOB_LIMIT - len(job.data)
                job.data += event.data[:max(0, room)]
                self.lmp.consumed(event.local, event.remote, len(event.data), now)  # printed at once
            case LmpDisconnected(owner="raw") if (event.local, event.remote) in self._open:
                job = self._open.pop((event.local, event.remote))
                job.complete = event.reason == P.DisconnectReason.USER_REQUEST
                job.reason = event.reason.name.lower().replace("_", " ")


def printer_stack(station: Station) -> Printer:
    return Printer(station)
