"""The framing in force at each IrDA speed: SIR up to 115200 bit/s, MIR at 0.576/1.152 Mbit/s, FIR at 4 Mbit/s.

One place that knows, for a speed, how a frame is wrapped (:func:`wrap`), decoded (:func:`unwrapper`), how
long its line bytes take (:func:`line_seconds`) and how a minimum turnaround time is filled
(:func:`turnaround_fill`). The station, the simulator, the runtime and the emulated medium ask it, so a new
speed changes nothing above.

The *fill* in front of a frame is the sender's way of keeping quiet for the receiver's minimum turnaround
time without a sleep, in the unit the framing has: XBOF bytes at SIR (10 bit times each), extra start flags at
MIR (8 bit times each), idle line at FIR (one microsecond per unit: a zero chip byte). A sender that cannot
send fill (a USB chip that frames itself) converts it back with :func:`fill_seconds`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irlap import sir
from irlap.sir import DEFAULT_MAX_FRAME

if TYPE_CHECKING:
    from irlap import fir, mir

# irlap.mir and irlap.fir are imported where a MIR or FIR frame is made or decoded: mir's bitstring costs 15 ms of
# every program's start, and a SIR-only link never needs them (irda send's time to the first byte, issue 17)
SIR_MAX = 115200
MIR_SPEEDS = (576000, 1152000)  # irlap.mir.SPEEDS
FIR_SPEEDS = (4000000,)  # irlap.fir.SPEED


def kind(baud: int) -> str:
    """``"sir"``, ``"mir"`` or ``"fir"`` (16 Mbit/s VFIR is not supported: ValueError)."""
    if baud <= SIR_MAX:
        return "sir"
    if baud in MIR_SPEEDS:
        return "mir"
    if baud in FIR_SPEEDS:
        return "fir"
    raise ValueError(f"no framing for {baud} bit/s (SIR up to 115200, MIR 576000/1152000, FIR 4000000)")


def wrap(frame: bytes, baud: int, fill: int = 0) -> bytes:
    """The line bytes of ``frame`` at ``baud`` with ``fill`` units in front (see the module docstring)."""
    if baud <= SIR_MAX:
        return sir.wrap(frame, fill)
    if baud in MIR_SPEEDS:
        from irlap import mir

        return mir.wrap(frame, mir.MIN_START_FLAGS + fill)
    if baud in FIR_SPEEDS:
        from irlap import fir

        return fir.wrap(frame, fill)
    raise ValueError(f"no framing for {baud} bit/s")


def unwrapper(baud: int, max_frame: int = DEFAULT_MAX_FRAME) -> sir.Unwrapper | mir.Unwrapper | fir.Unwrapper:
    """A fresh streaming decoder for what arrives at ``baud`` (all three share ``feed``/``stats``/``in_frame``)."""
    framing = kind(baud)
    if framing == "sir":
        return sir.Unwrapper(max_frame)
    if framing == "mir":
        from irlap import mir

        return mir.Unwrapper(max_frame)
    from irlap import fir

    return fir.Unwrapper(max_frame)


def bits_per_byte(baud: int) -> int:
    """Bit times one line byte takes: 10 on an asynchronous SIR line (start and stop bits), 8 at MIR; at FIR a
    line byte holds 8 chips, which last as long as 4 data bits (2 data bits per 4-chip symbol)."""
    framing = kind(baud)
    return 10 if framing == "sir" else 8 if framing == "mir" else 4


def line_seconds(nbytes: int, baud: int) -> float:
    """Seconds ``nbytes`` line bytes take at ``baud`` (FIR: 1 us per chip byte)."""
    return nbytes * bits_per_byte(baud) / baud


def turnaround_fill(baud: int, min_turnaround_us: int) -> int:
    """Fill units that last at least ``min_turnaround_us`` at ``baud``.

    SIR keeps the IrLAP rule of whole XBOFs (rounded down, as :func:`irlap.qos.mtt_xbofs` and the Linux stack
    do); MIR and FIR round up, so the receiver always gets its full turnaround.
    """
    if min_turnaround_us <= 0:
        return 0
    framing = kind(baud)
    if framing == "sir":
        return baud * min_turnaround_us // 10_000_000
    if framing == "mir":
        return -(-baud * min_turnaround_us // 8_000_000)
    return min_turnaround_us


def fill_seconds(baud: int, fill: int) -> float:
    """How long ``fill`` units last at ``baud`` (one fill unit is one line byte at every speed)."""
    return line_seconds(fill, baud)


def data_rate(baud: int) -> float:
    """Bytes of data per second the line carries at ``baud``: the line rate goodput is measured against.

    SIR sends each byte as 10 bits (start and stop bit), so 115200 bit/s carry 11520 B/s; MIR and FIR are
    synchronous: 8 bits a byte (576000 bit/s carry 72000 B/s, 4 Mbit/s 500000 B/s)."""
    return baud / 10 if baud <= SIR_MAX else baud / 8
