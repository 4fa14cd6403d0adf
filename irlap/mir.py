"""MIR framing (0.576 and 1.152 Mbit/s): synchronous HDLC framing of IrLAP frames, sans I/O.

On the wire (IrPHY 1.4, MIR) a frame is a synchronous bit stream, each byte least significant bit first::

    flag x (2 + extra)   stuffed(frame + FCS-16 little-endian)   flag
    01111110                                                      01111110

The flag is the byte 0x7E. Inside the frame a 0 is inserted after every five consecutive 1s (zero-bit
stuffing), so six 1s in a row only ever appear in a flag; seven or more 1s are an abort. The FCS is the same
CRC-16/X-25 as SIR's (:func:`irlap.sir.fcs16`). At least two start flags precede every frame; extra start
flags are how a sender fills a minimum turnaround time (:func:`irlap.framing.turnaround_fill`), as XBOFs do
at SIR speeds.

Bits travel on the medium packed into bytes in transmission order, least significant bit first (the order
an HDLC controller's shift register uses), so the flag alone is the byte ``7E``; the last byte of a frame is
padded with 1s, which a receiver reads as an idle line (marks) between frames.

The bit work is done on bitstring's text form (``"0110..."``): stuffing and destuffing are ``str.replace``
and flags are found with ``str.find``, all in C, which keeps a 2 KB frame in the tens of microseconds.
:class:`Unwrapper` is a streaming decoder with the interface and counters of :class:`irlap.sir.Unwrapper`.
"""

from __future__ import annotations

from bitstring import Bits

from irlap.sir import DEFAULT_MAX_FRAME, GOOD_RESIDUE, UnwrapStats, fcs16

FLAG = 0x7E
#: the flag as bits in transmission order
FLAG_BITS = "01111110"
#: seven 1s: an abort inside a frame (an idle line outside one)
ABORT_BITS = "1111111"
#: start flags every frame carries at least (IrPHY: two BOFs at MIR)
MIN_START_FLAGS = 2
SPEEDS = (576000, 1152000)

#: byte -> the same byte with its bits in reverse order (LSB-first transmission vs bitstring's MSB-first text)
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def to_bits(data: bytes) -> str:
    """``data`` as a string of '0'/'1' in transmission order (each byte least significant bit first)."""
    if not data:
        return ""
    return Bits(bytes(data).translate(_REVERSE)).bin


def from_bits(bits: str) -> bytes:
    """Pack '0'/'1' text (transmission order, a multiple of 8 long) into bytes, least significant bit first."""
    if not bits:
        return b""
    if len(bits) % 8:
        raise ValueError("bit string is not a whole number of bytes")
    return Bits("0b" + bits).tobytes().translate(_REVERSE)


def stuff(bits: str) -> str:
    """Insert a 0 after every five consecutive 1s."""
    return bits.replace("11111", "111110")


def destuff(bits: str) -> str:
    """Remove the 0 that follows every five consecutive 1s (the inverse of :func:`stuff`).

    ``str.replace`` works left to right without overlaps, and a stuffed stream has no run of more than five
    1s, so every ``111110`` it finds is a whole run and its inserted 0.
    """
    return bits.replace("111110", "11111")


def wrap(frame: bytes, start_flags: int = MIN_START_FLAGS) -> bytes:
    """The MIR line bytes of one IrLAP frame: ``start_flags`` flags (at least two), the stuffed frame and FCS,
    the closing flag, padded with idle 1s to a whole byte."""
    if start_flags < MIN_START_FLAGS:
        raise ValueError(f"MIR needs at least {MIN_START_FLAGS} start flags")
    frame = bytes(frame)
    body = stuff(to_bits(frame + fcs16(frame).to_bytes(2, "little")))
    bits = FLAG_BITS * start_flags + body + FLAG_BITS
    pad = -len(bits) % 8
    return from_bits(bits + "1" * pad)


def wire_bits(frame_len: int, start_flags: int = MIN_START_FLAGS) -> int:
    """Upper bound of the line bits of a frame of ``frame_len`` bytes (worst-case stuffing: one bit in five)."""
    data_bits = (frame_len + 2) * 8
    return 8 * (start_flags + 1) + data_bits + data_bits // 5 + 7


class Unwrapper:
    """Streaming MIR decoder: ``feed(chunk)`` returns the good frames (without FCS) completed by it.

    Counters as :class:`irlap.sir.UnwrapStats`: ``bad_fcs`` also counts a frame that is not a whole number of
    bytes after destuffing (a bit error that hit a stuffed bit); ``aborted`` counts seven 1s inside a frame;
    ``garbage_bytes`` counts bytes' worth of bits between frames that are neither flags nor an idle line.
    Memory is bounded: a frame longer than ``max_frame`` is dropped at once and skipped up to the next flag.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 2:
            raise ValueError("max_frame must be at least 2 (address and control)")
        self.max_frame = max_frame
        self.stats = UnwrapStats()
        self._max_bits = wire_bits(max_frame, 0)
        self._bits = ""  # undecided bits: since the last flag (in a frame) or a possible flag's start (hunting)
        self._open = False  # a flag has been seen: the bits that follow are a frame body (or more flags)
        self._skipping = False  # inside an oversize frame, waiting for a flag or an abort

    @property
    def in_frame(self) -> bool:
        """True while frame bits have arrived after a flag and the frame has not ended: the medium is busy."""
        return self._open and (bool(self._bits.strip("1")) or self._skipping)

    def reset(self) -> None:
        """Forget a partial frame (e.g. after a speed change); counters are kept."""
        self._bits = ""
        self._open = False
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        if not data:
            return frames
        bits = self._bits + to_bits(data)
        pos = 0
        end = len(bits)
        while pos < end:
            if not self._open:
                flag = bits.find(FLAG_BITS, pos)
                if flag < 0:
                    keep = max(pos, end - 7)  # a flag may straddle the next chunk
                    self._count_garbage(bits[pos:keep])
                    pos = keep
                    break
                self._count_garbage(bits[pos:flag])
                pos = flag + 8
                self._open = True
                self._skipping = False
                continue
            flag = bits.find(FLAG_BITS, pos)
            abort = bits.find(ABORT_BITS, pos, flag if flag >= 0 else end)
            if abort >= 0:
                if abort > pos and not self._skipping:
                    self.stats.aborted += 1  # frame bits, then seven 1s
                self._open = False
                self._skipping = False
                pos = abort + 7
                continue
            if flag < 0:
                if not self._skipping and end - pos > self._max_bits:
                    self.stats.oversize += 1
                    self._skipping = True
                if self._skipping:
                    pos = max(pos, end - 7)  # drop the oversize frame's bits, keep a possible flag start
                break
            body = bits[pos:flag]
            pos = flag + 8  # the closing flag may open the next frame (HDLC shared flags)
            if self._skipping:
                self._skipping = False
                continue
            if "0" in body:  # a body of 1s alone is idle padding between two flags, not a frame
                frame = self._finish(body)
                if frame is not None:
                    frames.append(frame)
        self._bits = bits[pos:]
        return frames

    def _count_garbage(self, bits: str) -> None:
        if "0" in bits:  # 1s between frames are an idle line
            self.stats.garbage_bytes += max(1, len(bits) // 8)

    def _finish(self, body: str) -> bytes | None:
        bits = destuff(body)
        if len(bits) > (self.max_frame + 2) * 8:
            self.stats.oversize += 1
            return None
        if len(bits) < 32:
            self.stats.runts += 1
            return None
        if len(bits) % 8:
            self.stats.bad_fcs += 1  # not a whole number of bytes: corrupted
            return None
        raw = from_bits(bits)
        if fcs16(raw) != GOOD_RESIDUE:
            self.stats.bad_fcs += 1
            return None
        self.stats.good += 1
        return raw[:-2]


def unwrap_all(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> tuple[list[bytes], UnwrapStats]:
    """Decode a complete capture at once (a trailing partial frame is counted as aborted)."""
    unwrapper = Unwrapper(max_frame)
    frames = unwrapper.feed(data)
    if unwrapper.in_frame:
        unwrapper.stats.aborted += 1
    return frames, unwrapper.stats
