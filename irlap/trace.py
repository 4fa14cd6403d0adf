"""Reading traffic: raw serial bytes to pcap, and one line (or one JSON object) per frame.

The text form follows the spirit of irdadump: time, direction, frame kind, addresses, then the
fields that matter for that kind (N(S)/N(R), XID slot and nickname, QoS in words).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO

from irlap import frames as F
from irlap.errors import FrameError, QosError
from irlap.pcap import PcapRecord, PcapWriter, RecordKind
from irlap.sir import Unwrapper, UnwrapStats

_EOF = b"\xc1"


@dataclass
class ConvertReport:
    """What :func:`convert_raw` found in a raw capture."""

    frames: int
    stats: UnwrapStats

    def as_dict(self) -> dict[str, int]:
        return {"frames": self.frames, **self.stats.as_dict()}


def convert_raw(raw: bytes, stream: BinaryIO, *, outgoing: bool = False, baud: int = 9600) -> ConvertReport:
    """Write every good frame of ``raw`` (bytes seen on a SIR line) to ``stream`` as pcap.

    A frame's timestamp is the time its EOF would have reached the line at ``baud`` (10 bits per
    byte), so relative timing in Wireshark looks like the line's.
    """
    if baud <= 0:
        raise ValueError("baud must be positive")
    unwrapper = Unwrapper()
    written = 0
    position = 0
    with PcapWriter(stream) as writer:
        pieces = raw.split(_EOF)
        for index, piece in enumerate(pieces):
            chunk = piece + _EOF if index < len(pieces) - 1 else piece
            position += len(chunk)
            for frame in unwrapper.feed(chunk):
                writer.write_frame(frame, outgoing=outgoing, time=position * 10 / baud)
                written += 1
    if unwrapper.in_frame:
        unwrapper.stats.aborted += 1  # the capture ended inside a frame
    return ConvertReport(frames=written, stats=unwrapper.stats)


# --- decoding -----------------------------------------------------------------------------------
@dataclass
class DecodedRecord:
    """One capture record in words: a frame, a log message or a missed-frames marker."""

    time: float
    direction: str  # "in", "out", "log"
    kind: str
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    def line(self) -> str:
        arrow = {"in": "<-", "out": "->"}.get(self.direction, "--")
        return f"{self.time:10.6f} {arrow} {self.kind:<5} {self.summary}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 6),
            "direction": self.direction,
            "kind": self.kind,
            "summary": self.summary,
            **self.fields,
            "hex": self.raw.hex(),
        }


def _addr(address: int) -> str:
    return f"{address:08x}"


def _discovery_info(info: F.DiscoveryInfo | None) -> tuple[str, dict[str, Any]]:
    if info is None:
        return "", {}
    return (
        f' hint={info.hints.hex()} "{info.nickname}"',
        {"hints": info.hints.hex(), "charset": info.charset, "nickname": info.nickname},
    )


def _qos_words(frame: Any) -> tuple[str, dict[str, Any]]:
    qos = getattr(frame, "qos", None)
    if qos is None:
        return "", {}
    try:
        text = qos.describe()
    except QosError as exc:
        text = f"invalid QoS ({exc})"
    return f" [{text}]", {"qos": text}


def describe_frame(data: bytes) -> tuple[str, str, dict[str, Any]]:
    """(kind, summary, fields) of one IrLAP frame; a malformed frame is described, never raised."""
    try:
        frame = F.parse(data)
    except FrameError as exc:
        return "?", f"malformed frame ({exc}) {data.hex()}", {"error": str(exc)}
    fields: dict[str, Any] = {
        "ca": f"0x{frame.address:02x}",
        "cr": "cmd" if frame.command else "rsp",
        "pf": frame.poll_final,
    }
    pf = (" P" if frame.command else " F") if frame.poll_final else ""
    head = f"ca=0x{frame.address:02x} {fields['cr']}{pf}"
    extra = ""
    match frame:
        case F.IFrame():
            fields.update(ns=frame.ns, nr=frame.nr, length=len(frame.info))
            extra = f" ns={frame.ns} nr={frame.nr} len={len(frame.info)}"
        case F.RR() | F.RNR() | F.REJ() | F.SREJ():
            fields.update(nr=frame.nr)
            extra = f" nr={frame.nr}"
        case F.XIDCommand() | F.XIDResponse():
            slot = "final" if frame.slot == 0xFF else str(frame.slot)
            fields.update(saddr=_addr(frame.source), daddr=_addr(frame.dest), slots=frame.slots, slot=slot,
                          conflict=frame.conflict)
            info_text, info_fields = _discovery_info(frame.info)
            fields.update(info_fields)
            extra = f" saddr={_addr(frame.source)} daddr={_addr(frame.dest)} S={frame.slots} s={slot}"
            extra += (" conflict" if frame.conflict else "") + info_text
        case F.SNRM():
            if frame.source is None:
                extra = " (reset)"
                fields.update(reset=True)
            else:
                fields.update(saddr=_addr(frame.source), daddr=_addr(frame.dest),
                              new_ca=f"0x{frame.new_address:02x}")
                qos_text, qos_fields = _qos_words(frame)
                fields.update(qos_fields)
                extra = (f" saddr={_addr(frame.source)} daddr={_addr(frame.dest)}"
                         f" new-ca=0x{frame.new_address:02x}{qos_text}")
        case F.UA():
            if frame.source is not None:
                fields.update(saddr=_addr(frame.source), daddr=_addr(frame.dest))
                qos_text, qos_fields = _qos_words(frame)
                fields.update(qos_fields)
                extra = f" saddr={_addr(frame.source)} daddr={_addr(frame.dest)}{qos_text}"
        case F.FRMR():
            reasons = [name for name in ("w", "x", "y", "z") if getattr(frame, name)]
            fields.update(rejected_control=f"0x{frame.rejected_control:02x}", vs=frame.vs, vr=frame.vr,
                          reasons=reasons)
            extra = (f" rejected=0x{frame.rejected_control:02x} vs={frame.vs} vr={frame.vr}"
                     f" reason={''.join(reasons) or '-'}")
        case F.TEST():
            if frame.source is not None:
                fields.update(saddr=_addr(frame.source), daddr=_addr(frame.dest))
                extra = f" saddr={_addr(frame.source)} daddr={_addr(frame.dest)}"
            fields.update(length=len(frame.info))
            extra += f" len={len(frame.info)}"
        case F.UI():
            fields.update(length=len(frame.info))
            extra = f" len={len(frame.info)}"
    return frame.kind, head + extra, fields


def decode_record(record: PcapRecord, *, start: float = 0.0) -> DecodedRecord:
    """One pcap record in words; times are relative to ``start``."""
    time = record.time - start
    if record.kind is RecordKind.LOG:
        return DecodedRecord(time, "log", "LOG", record.text, {"text": record.text}, record.data)
    if record.kind is RecordKind.MISSED:
        return DecodedRecord(time, "log", "MISS", f"missed: {record.text}", {"text": record.text}, record.data)
    direction = "out" if record.kind is RecordKind.FRAME_OUT else "in"
    kind, summary, fields = describe_frame(record.data)
    return DecodedRecord(time, direction, kind, summary, fields, record.data)
