"""FIR framing (4 Mbit/s): 4PPM encoding of IrLAP frames with a preamble, flags and a CRC-32, sans I/O.

On the wire (IrPHY 1.4, FIR) a frame is a stream of chips at 8 Mchip/s::

    preamble x 16   start flag   4PPM(frame + CRC-32 little-endian)   stop flag

* 4PPM: each pair of data bits becomes one symbol of four chips with exactly one pulse, its position the
  pair's value: 00 -> 1000, 01 -> 0100, 10 -> 0010, 11 -> 0001. A byte is sent least significant pair first
  (bits 1-0, 3-2, 5-4, 7-6), so it takes 16 chips, 2 us.
* preamble: ``1000 0000 1010 1000`` sixteen times; start flag ``0000 1100 0000 1100 0110 0000 0110 0000``;
  stop flag ``0000 1100 0000 1100 0000 0110 0000 0110``. They hold symbols that are not data (no pulse, two
  pulses), so they cannot occur inside a frame.
* an abort is a run of empty symbols (``0000``); silence is the same, so a frame cut off by a blocked beam is
  counted as aborted.
* the CRC is CRC-32 of IEEE 802 (``fastcrc.crc32.iso_hdlc``, check value 0xCBF43926), sent least significant
  byte first; over a frame followed by its own CRC it leaves the residue 0x2144DF1C.

Chips travel on the medium packed into bytes, first chip in the most significant bit, two symbols per byte:
the preamble is ``80 A8`` and the flags are ``0C 0C 60 60`` and ``0C 0C 06 06``; a data byte is two chip
bytes; one chip byte lasts 1 us. A frame always starts on a byte, so the decoder never has to search for the
symbol phase (a receiver's clock recovery does that with the preamble). Leading zero bytes are idle line
before the preamble: :func:`wrap`'s ``idle_us`` fills a minimum turnaround time with them.

Encoding and decoding are ``bytes.translate`` and slice assignments, all in C.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastcrc import crc32

from irlap.sir import DEFAULT_MAX_FRAME, UnwrapStats

SPEED = 4000000
PREAMBLE = bytes.fromhex("80a8") * 16
START_FLAG = bytes.fromhex("0c0c6060")
STOP_FLAG = bytes.fromhex("0c0c0606")
#: CRC-32 (with its final XOR) over a frame followed by its own CRC, little-endian
GOOD_RESIDUE = 0x2144DF1C
#: seconds one chip byte (8 chips at 8 Mchip/s) takes on the line
CHIP_BYTE_SECONDS = 1e-6

_SYMBOL = (0x8, 0x4, 0x2, 0x1)  # chips of the symbol for a bit pair 0..3, first chip in the high bit
_FIRST = bytes(_SYMBOL[b & 3] << 4 | _SYMBOL[b >> 2 & 3] for b in range(256))  # chip byte of bits 0-3
_SECOND = bytes(_SYMBOL[b >> 4 & 3] << 4 | _SYMBOL[b >> 6 & 3] for b in range(256))  # chip byte of bits 4-7
_VALID = bytes(sorted({_FIRST[b] for b in range(256)}))  # the 16 chip bytes that hold two data symbols
_LOW = bytearray(256)  # chip byte -> the 4 data bits it carries
for _b in range(16):
    _LOW[_FIRST[_b]] = _b
_LOW = bytes(_LOW)
_HIGH = bytes((v << 4) & 0xFF for v in _LOW)
_NOT_IDLE = bytes(b for b in range(256) if b not in (0x00, 0x80, 0xA8))  # bytes that are neither preamble nor idle


def fcs32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (IEEE 802) of ``data`` (0xCBF43926 for ``b"123456789"``)."""
    return crc32.iso_hdlc(bytes(data))


def encode(data: bytes) -> bytes:
    """4PPM chips of ``data``: two chip bytes per data byte."""
    data = bytes(data)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(_FIRST)
    out[1::2] = data.translate(_SECOND)
    return bytes(out)


def decode(chips: bytes) -> bytes | None:
    """Data bytes of 4PPM ``chips`` (an even number of chip bytes, data symbols only), else None."""
    chips = bytes(chips)
    if len(chips) % 2 or chips.translate(None, _VALID):
        return None
    if not chips:
        return b""
    low = int.from_bytes(chips[0::2].translate(_LOW), "big")
    high = int.from_bytes(chips[1::2].translate(_HIGH), "big")
    return (low | high).to_bytes(len(chips) // 2, "big")


def wrap(frame: bytes, idle_us: int = 0) -> bytes:
    """The FIR line bytes of one IrLAP frame, after ``idle_us`` microseconds of idle line (one zero byte each)."""
    if idle_us < 0:
        raise ValueError("idle_us must be >= 0")
    frame = bytes(frame)
    body = encode(frame + fcs32(frame).to_bytes(4, "little"))
    return b"\x00" * idle_us + PREAMBLE + START_FLAG + body + STOP_FLAG


def wire_len(frame_len: int, idle_us: int = 0) -> int:
    """Line bytes (= microseconds) of a frame of ``frame_len`` bytes."""
    return idle_us + len(PREAMBLE) + 8 + 2 * (frame_len + 4)


@dataclass
class FirStats(UnwrapStats):
    """:class:`irlap.sir.UnwrapStats` plus FIR's own error."""

    illegal: int = 0  #: complete frames holding a chip pattern that is no data symbol (chip errors)

    @property
    def dropped(self) -> int:
        return super().dropped + self.illegal


def checked_frame(raw: bytes, stats: UnwrapStats) -> bytes | None:
    """The frame in ``raw`` (a decoded frame and its CRC-32) without the CRC, or None when it is too short or its
    CRC is bad (counted in ``stats``); for every FIR receive path, ours and a chip driver's."""
    if len(raw) < 6:
        stats.runts += 1
        return None
    if fcs32(raw) != GOOD_RESIDUE:
        stats.bad_fcs += 1
        return None
    stats.good += 1
    return raw[:-4]


class Unwrapper:
    """Streaming FIR decoder: ``feed(chunk)`` returns the good frames (without CRC) completed by it.

    Counters as :class:`irlap.sir.UnwrapStats`, plus ``illegal``: ``aborted`` counts a frame cut by empty
    symbols (an abort or silence) or by a new start flag; ``garbage_bytes`` counts bytes between frames that
    are neither idle nor preamble. Memory is bounded: a frame longer than ``max_frame`` is dropped at once and
    skipped up to the next flag or idle line.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 2:
            raise ValueError("max_frame must be at least 2 (address and control)")
        self.max_frame = max_frame
        self.stats = FirStats()
        self._max_chips = 2 * (max_frame + 4)
        self._buffer = bytearray()  # chip bytes after the start flag (in a frame) or undecided ones (hunting)
        self._in_frame = False
        self._skipping = False

    @property
    def in_frame(self) -> bool:
        """True while a frame has started (start flag seen) and not ended: the medium is busy."""
        return self._in_frame

    def reset(self) -> None:
        """Forget a partial frame (e.g. after a speed change); counters are kept."""
        self._buffer.clear()
        self._in_frame = False
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        if not data:
            return frames
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(data)
        pos = 0
        end = len(data)
        while pos < end:
            if not self._in_frame:
                start = data.find(START_FLAG, pos)
                if start < 0:
                    keep = max(pos, end - 3)  # a start flag may straddle the next chunk
                    self._count_garbage(data[pos:keep])
                    self._buffer += data[keep:]
                    return frames
                self._count_garbage(data[pos:start])
                pos = start + 4
                self._in_frame = True
                self._skipping = False
                continue
            stop = data.find(STOP_FLAG, pos)
            limit = end if stop < 0 else stop
            cut = data.find(b"\x00", pos, limit)  # an empty symbol pair: abort or silence
            restart = data.find(START_FLAG, pos, limit)
            if restart >= 0 and (cut < 0 or restart < cut):
                if not self._skipping:
                    self.stats.aborted += 1
                self._skipping = False
                pos = restart + 4  # still in a frame: the new one
                continue
            if cut >= 0:
                if not self._skipping:
                    self.stats.aborted += 1
                self._in_frame = False
                self._skipping = False
                pos = cut + 1
                continue
            if stop < 0:
                if not self._skipping and end - pos > self._max_chips + 3:
                    self.stats.oversize += 1
                    self._skipping = True
                if self._skipping:
                    pos = max(pos, end - 3)  # drop the oversize frame's chips, keep a possible flag start
                self._buffer += data[pos:]
                return frames
            chips = data[pos:stop]
            pos = stop + 4
            self._in_frame = False
            if self._skipping:
                self._skipping = False
                continue
            frame = self._finish(chips)
            if frame is not None:
                frames.append(frame)
        return frames

    def _count_garbage(self, data: bytes) -> None:
        if data:
            self.stats.garbage_bytes += len(data) - len(data.translate(None, _NOT_IDLE))

    def _finish(self, chips: bytes) -> bytes | None:
        if len(chips) > self._max_chips:
            self.stats.oversize += 1
            return None
        raw = decode(chips)
        if raw is None:
            self.stats.illegal += 1
            return None
        return checked_frame(raw, self.stats)


def unwrap_all(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> tuple[list[bytes], FirStats]:
    """Decode a complete capture at once (a trailing partial frame is counted as aborted)."""
    unwrapper = Unwrapper(max_frame)
    frames = unwrapper.feed(data)
    if unwrapper.in_frame:
        unwrapper.stats.aborted += 1
    return frames, unwrapper.stats
