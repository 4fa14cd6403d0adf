"""SIR asynchronous framing: wrapping IrLAP frames for a UART and unwrapping a byte stream.

On the wire (IrPHY async, up to 115200 bit/s) a frame is::

    XBOF * n, BOF, escaped(frame + FCS-16 little-endian), EOF

with XBOF 0xFF, BOF 0xC0, EOF 0xC1; the bytes 0xC0, 0xC1 and 0x7D inside the frame are sent as
0x7D followed by the byte XOR 0x20. The FCS is CRC-16/X-25, computed by a native library because a
pure-Python CRC is thousands of times slower.

:class:`Unwrapper` is a streaming decoder: it takes bytes in any chunking (a serial read returns
whatever the UART had) and returns the frames whose FCS is good, counting everything it had to drop.
It is hand-written byte-stream code (``bytes.find`` and ``split`` loops), not a construct struct.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from fastcrc import crc16

XBOF = 0xFF
BOF = 0xC0
EOF = 0xC1
CE = 0x7D  # control escape
ESCAPE_XOR = 0x20

#: Residue of CRC-16/X-25 (with its final XOR) over a frame followed by its own FCS.
GOOD_RESIDUE = 0x0F47
#: Default number of XBOFs in front of a frame when nothing was negotiated (NDM at 9600 bit/s).
DEFAULT_XBOFS = 12
#: Largest IrLAP frame (address + control + 2048-byte I-field), FCS not included.
DEFAULT_MAX_FRAME = 2 + 2048

_BOF_BYTES = bytes((BOF,))
_EOF_BYTES = bytes((EOF,))


def fcs16(data: bytes) -> int:
    """CRC-16/X-25 of ``data`` (0x906E for ``b"123456789"``)."""
    return crc16.ibm_sdlc(bytes(data))


def escape(data: bytes) -> bytes:
    """Byte-stuff ``data`` so that it contains no BOF, EOF or bare escape byte."""
    return (
        data.replace(b"\x7d", b"\x7d\x5d").replace(b"\xc0", b"\x7d\xe0").replace(b"\xc1", b"\x7d\xe1")
    )


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`. A trailing lone escape byte is dropped (the caller treats it as an abort)."""
    data = bytes(data)
    pos = data.find(b"\x7d")
    if pos < 0:
        return data
    out = bytearray()
    start = 0
    while pos >= 0:
        out += data[start:pos]
        if pos + 1 < len(data):
            out.append(data[pos + 1] ^ ESCAPE_XOR)
        start = pos + 2
        pos = data.find(b"\x7d", start)
    out += data[start:]
    return bytes(out)


def wrap(frame: bytes, xbofs: int = DEFAULT_XBOFS) -> bytes:
    """The bytes to write to the UART for one IrLAP frame.

    ``xbofs`` fillers precede the BOF: the negotiated additional BOFs plus, at SIR speeds, the XBOFs
    that fill the peer's minimum turnaround time (see :func:`irlap.qos.mtt_xbofs`).
    """
    if xbofs < 0:
        raise ValueError("xbofs must be >= 0")
    frame = bytes(frame)
    fcs = fcs16(frame).to_bytes(2, "little")
    return b"\xff" * xbofs + _BOF_BYTES + escape(frame + fcs) + _EOF_BYTES


@dataclass
class UnwrapStats:
    """Counters of what an :class:`Unwrapper` saw; all only ever grow."""

    good: int = 0  #: frames with a good FCS, returned to the caller
    bad_fcs: int = 0  #: complete frames whose FCS did not match
    aborted: int = 0  #: frames ended by an escape + EOF, or cut short by a new BOF
    oversize: int = 0  #: frames longer than the maximum frame size
    runts: int = 0  #: frames too short to hold an address, a control byte and an FCS
    garbage_bytes: int = 0  #: bytes outside any frame that are not XBOF fillers

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def dropped(self) -> int:
        return self.bad_fcs + self.aborted + self.oversize + self.runts


class Unwrapper:
    """Streaming SIR decoder: ``feed(chunk)`` returns the good frames (without FCS) completed by it.

    Memory is bounded: a frame that grows beyond the maximum is dropped on the spot and the rest of
    it is skipped up to the next BOF or EOF.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 2:
            raise ValueError("max_frame must be at least 2 (address and control)")
        self.max_frame = max_frame
        self.stats = UnwrapStats()
        # escaped bytes can double the size; +2 for the FCS
        self._max_raw = 2 * (max_frame + 2)
        self._buffer = bytearray()
        self._in_frame = False
        self._skipping = False  # inside an oversize frame, waiting for BOF/EOF

    @property
    def in_frame(self) -> bool:
        """True while a frame has started (BOF seen) and not ended: the medium is busy."""
        return self._in_frame

    def reset(self) -> None:
        """Forget a partial frame (e.g. after a speed change); counters are kept."""
        self._buffer.clear()
        self._in_frame = False
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        data = bytes(data)
        pos = 0
        end = len(data)
        while pos < end:
            if not self._in_frame:
                bof = data.find(_BOF_BYTES, pos)
                stop = end if bof < 0 else bof
                gap = data[pos:stop]
                if gap:
                    self.stats.garbage_bytes += len(gap) - gap.count(b"\xff")
                if bof < 0:
                    return frames
                pos = bof + 1
                self._in_frame = True
                self._skipping = False
                self._buffer.clear()
                continue
            # inside a frame: look for the next BOF or EOF
            bof = data.find(_BOF_BYTES, pos)
            eof = data.find(_EOF_BYTES, pos)
            if bof < 0 and eof < 0:
                self._append(data[pos:])
                return frames
            if eof < 0 or (0 <= bof < eof):
                # a new BOF before the end: the frame so far is lost (repeated BOFs are harmless)
                self._append(data[pos:bof])
                if self._buffer or self._skipping:
                    self.stats.aborted += 0 if self._skipping else 1
                self._buffer.clear()
                self._skipping = False
                pos = bof + 1
                continue
            self._append(data[pos:eof])
            pos = eof + 1
            self._in_frame = False
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
        return frames

    def _append(self, chunk: bytes) -> None:
        if self._skipping or not chunk:
            return
        self._buffer += chunk
        if len(self._buffer) > self._max_raw:
            self.stats.oversize += 1
            self._buffer.clear()
            self._skipping = True

    def _finish(self) -> bytes | None:
        if self._skipping:
            self._skipping = False
            return None
        raw = bytes(self._buffer)
        self._buffer.clear()
        if raw.endswith(b"\x7d") and (len(raw) - len(raw.rstrip(b"\x7d"))) % 2 == 1:
            self.stats.aborted += 1  # escape followed by EOF: the sender aborted the frame
            return None
        body = unescape(raw)
        if len(body) < 4:
            if body:
                self.stats.runts += 1
            return None
        if len(body) - 2 > self.max_frame:
            self.stats.oversize += 1
            return None
        if fcs16(body) != GOOD_RESIDUE:
            self.stats.bad_fcs += 1
            return None
        self.stats.good += 1
        return body[:-2]


def unwrap_all(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> tuple[list[bytes], UnwrapStats]:
    """Decode a complete byte capture at once (a trailing partial frame is counted as aborted)."""
    unwrapper = Unwrapper(max_frame)
    frames = unwrapper.feed(data)
    if unwrapper.in_frame and (unwrapper._buffer or unwrapper._skipping):
        unwrapper.stats.aborted += 1
    return frames, unwrapper.stats
