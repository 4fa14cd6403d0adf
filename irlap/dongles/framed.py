"""Frame-level dongles: adapters that move whole IrLAP frames rather than a byte stream (the USB chips).

A serial dongle sits behind a UART: the runtime writes SIR-wrapped bytes and reads a byte stream it unwraps.
A USB IrDA chip is handed one frame per bulk transfer (the USB IrDA Bridge class, whose chip wraps and
checks the FCS itself) or a block of host-wrapped bytes (STIr4200, Kingsun), and gives back frames or
raw bytes the driver unwraps. So these drivers do not pretend to be a serial port: the runtime hands a
:class:`FrameDongle` the frame and the XBOF count of each :class:`~irlap.station.Transmit`, and the reader
thread asks it for received frames (already unwrapped and FCS-checked, whoever did it). Framing that is the
host's job (SIR wrapping for STIr4200 and the Kingsun parts) is done inside the driver with :mod:`irlap.sir`.
Why not a pyserial-like object carrying SIR bytes: the Bridge class chips take frames, so such an object
would unwrap what the runtime just wrapped; at MIR/FIR there is no SIR byte stream at all.

The driver owns its port object (for USB: :class:`irlap.dongles.usb.UsbPort`); a failure of the port
(the adapter pulled out) is raised as :class:`~irlap.port.PortError` with the reason, which the runtime
turns into ``PortFailed`` (ENETDOWN above).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from irlap import framing
from irlap.dongles import Dongle
from irlap.qos import MIN_TURNAROUND_US, QosParams


@dataclass
class Received:
    """What one receive call brought: whole frames (no FCS), and whether the chip saw the medium busy."""

    frames: list[bytes] = field(default_factory=list)
    busy: bool = False


class FrameDongle(Dongle):
    """Base class of frame-level drivers (see the module docstring)."""

    frame_level: ClassVar[bool] = True
    #: USB vendor:product ids this driver is chosen for by default (``usb:`` URLs, ``irda dongles --scan``)
    usb_ids: ClassVar[tuple[tuple[int, int], ...]] = ()

    @property
    def turnaround_from_rx(self) -> bool:
        """At the current speed, does the driver keep the peer's minimum turnaround counted from the end of the
        last frame heard (waiting itself, for a chip without fill) rather than as fill in front of the frame?
        Then the station may use part of that time to wait for data (``Station.turnaround_from_rx``)."""
        return False

    def open(self) -> None:
        """Bring the chip up at 9600 bit/s."""
        self.set_speed(9600)

    def close(self) -> None:
        """Leave the chip idle and release the port (never raises)."""

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        """Send one IrLAP frame (no FCS) with ``xbofs`` extra BOFs at the current speed."""
        raise NotImplementedError

    def receive(self, timeout: float) -> Received:
        """Frames received since the last call, waiting up to ``timeout`` seconds for the first."""
        raise NotImplementedError

    def cancel_receive(self) -> None:
        """Make a receive in progress return soon (default: it ends at its timeout)."""

    def line_time(self, frame: bytes, xbofs: int) -> float:
        """Seconds the frame and its ``xbofs`` fill occupy the medium at the current speed, in that speed's framing
        (:mod:`irlap.framing`: SIR 10 bit times per wrapped byte, MIR its stuffed bits, FIR 1 us per chip byte)."""
        speed = self.speed or 9600
        if framing.kind(speed) == "fir":
            from irlap import fir  # as irlap.framing: the FIR codec only for a FIR link

            nbytes = fir.wire_len(len(frame), xbofs)  # the length alone: no 4PPM encoding per frame sent
        else:
            nbytes = len(framing.wrap(frame, speed, xbofs))
        return framing.line_seconds(nbytes, speed)

    def restrict_qos(self, qos: QosParams) -> QosParams:
        """Our QoS offer narrowed to what this chip can do (known once it is open)."""
        from dataclasses import replace

        qos = qos.restrict_bauds(self.speeds)
        needed = self.min_turnaround_us
        if qos.value("min_turnaround") < needed:
            value = min((v for v in MIN_TURNAROUND_US if v >= needed), default=MIN_TURNAROUND_US[0])
            qos = replace(qos, min_turnaround=1 << MIN_TURNAROUND_US.index(value))
        return qos
