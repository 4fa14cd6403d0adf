"""IAS (Information Access Service): the directory a device keeps of its services.

The database holds objects (a class name and attributes: integer, octet sequence or user string);
it starts with the ``Device`` object (``DeviceName``, ``IrLMPSupport``). The server answers
GetValueByClass with every object of the class that has the attribute, or "no such class" / "no
such attribute"; other operations get "unsupported". Messages longer than one IrLMP frame are cut
into frames; every frame but the last has the LST bit clear and is acknowledged (ACK bit) by the
other side before the next is sent, in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irsock.lmp import pdu as P

IRLMP_SUPPORT = bytes((0x01, 0x00, 0x00))  # IrLMP version 1, no optional IAS/LM-MUX features
MAX_NAME = 60  # the Linux stack's limit for class and attribute names we accept locally


@dataclass
class IasObject:
    object_id: int
    class_name: bytes
    attributes: dict[bytes, P.IasValue] = field(default_factory=dict)


class IasDatabase:
    """The local IAS objects."""

    def __init__(self) -> None:
        self.objects: list[IasObject] = []
        self._next_id = 0

    @classmethod
    def for_device(cls, nickname: str, charset: int = 0) -> IasDatabase:
        db = cls()
        db.set("Device", "DeviceName", P.IasValue.of_string(nickname, 0 if nickname.isascii() else 0xFF)
               if charset == 0 else P.IasValue.of_string(nickname, charset))
        db.set("Device", "IrLMPSupport", P.IasValue.of_octets(IRLMP_SUPPORT))
        return db

    @staticmethod
    def _name(text: str | bytes, what: str) -> bytes:
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if not raw or len(raw) > MAX_NAME:
            raise ValueError(f"an IAS {what} name is 1 to {MAX_NAME} bytes")
        return raw

    def set(self, class_name: str | bytes, attribute: str | bytes, value: P.IasValue) -> IasObject:
        """Set an attribute on the first object of the class (made if missing)."""
        cls = self._name(class_name, "class")
        attr = self._name(attribute, "attribute")
        obj = next((o for o in self.objects if o.class_name == cls), None)
        if obj is None:
            obj = IasObject(self._next_id, cls)
            self._next_id += 1
            self.objects.append(obj)
        obj.attributes[attr] = value
        return obj

    def remove(self, class_name: str | bytes, attribute: str | bytes | None = None) -> bool:
        cls = self._name(class_name, "class")
        removed = False
        for obj in list(self.objects):
            if obj.class_name != cls:
                continue
            if attribute is None:
                self.objects.remove(obj)
                removed = True
            else:
                removed |= obj.attributes.pop(self._name(attribute, "attribute"), None) is not None
                if not obj.attributes:
                    self.objects.remove(obj)
        return removed

    def get(self, class_name: bytes, attribute: bytes) -> tuple[int, tuple[tuple[int, P.IasValue], ...]]:
        """(return code, entries) for GetValueByClass."""
        objects = [o for o in self.objects if o.class_name == class_name]
        if not objects:
            return P.IAS_NO_SUCH_CLASS, ()
        entries = tuple((o.object_id, o.attributes[attribute]) for o in objects if attribute in o.attributes)
        if not entries:
            return P.IAS_NO_SUCH_ATTRIBUTE, ()
        return P.IAS_SUCCESS, entries


def fragments(control_opcode: int, body: bytes, frame_size: int) -> list[bytes]:
    """IAS frames for one message: control byte (LST on the last) + up to ``frame_size - 1`` bytes each."""
    room = max(1, frame_size - 1)
    pieces = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        out.append(bytes(((P.IAS_LST if last else 0) | control_opcode,)) + piece)
    return out


class _Reassembly:
    """Frames of one message in, ACKs out; ``done`` when the LST frame arrived."""

    LIMIT = 8192

    def __init__(self) -> None:
        self.body = bytearray()
        self.opcode: int | None = None

    def add(self, frame: bytes) -> tuple[bool, list[bytes]]:
        if not frame:
            raise P.PduError("empty IAS frame")
        control = frame[0]
        if control & P.IAS_ACK and len(frame) == 1:
            return False, []  # an acknowledgement, handled by the sender side
        self.opcode = control & 0x3F
        self.body += frame[1:]
        if len(self.body) > self.LIMIT:
            raise P.PduError("IAS message longer than 8 kB")
        if control & P.IAS_LST:
            return True, []
        return False, [bytes((P.IAS_ACK | self.opcode,))]


class _Sender:
    """Sends a fragmented message one frame per ACK."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = list(frames)

    def first(self) -> list[bytes]:
        return [self.frames.pop(0)] if self.frames else []

    def on_ack(self) -> list[bytes]:
        return [self.frames.pop(0)] if self.frames else []


class IasServerSession:
    """One client's connection to our LSAP 0."""

    def __init__(self, db: IasDatabase) -> None:
        self.db = db
        self.request = _Reassembly()
        self.sender: _Sender | None = None

    def receive(self, frame: bytes, frame_size: int) -> list[bytes]:
        """IAS frames to send back for one frame received."""
        if frame and frame[0] & P.IAS_ACK and len(frame) == 1:
            return self.sender.on_ack() if self.sender else []
        try:
            done, acks = self.request.add(frame)
        except P.PduError:
            self.request = _Reassembly()
            return fragments(P.IAS_GET_VALUE_BY_CLASS, bytes((P.IAS_UNSUPPORTED,)), frame_size)
        if not done:
            return acks
        opcode = self.request.opcode or 0
        body = bytes((opcode | P.IAS_LST,)) + bytes(self.request.body)
        self.request = _Reassembly()
        try:
            _control, class_name, attribute = P.parse_ias_request(body)
        except P.PduError:
            status, entries = P.IAS_UNSUPPORTED, ()
        else:
            if opcode != P.IAS_GET_VALUE_BY_CLASS:
                status, entries = P.IAS_UNSUPPORTED, ()
            else:
                status, entries = self.db.get(class_name, attribute)
        answer = P.build_ias_response_body(status, entries)
        if len(answer) > 0xFFFF:
            answer = P.build_ias_response_body(P.IAS_LIST_TOO_LONG)
        self.sender = _Sender(fragments(opcode or P.IAS_GET_VALUE_BY_CLASS, answer, frame_size))
        return self.sender.first()


@dataclass
class IasClientCall:
    """One GetValueByClass question from us to a peer."""

    query: int
    device: int
    class_name: bytes
    attribute: bytes
    request: bytes
    _reply: _Reassembly = field(default_factory=_Reassembly)
    _sender: _Sender | None = None
    error: str = ""  #: set when the peer's answer could not be read

    def start(self, frame_size: int) -> list[bytes]:
        body = self.request[1:]
        self._sender = _Sender(fragments(P.IAS_GET_VALUE_BY_CLASS, body, frame_size))
        return self._sender.first()

    def receive(self, frame: bytes) -> tuple[list[bytes], P.IasResponse | None]:
        if frame and frame[0] & P.IAS_ACK and len(frame) == 1:
            return (self._sender.on_ack() if self._sender else []), None
        try:
            done, acks = self._reply.add(frame)
            if not done:
                return acks, None
            return [], P.parse_ias_response_body(bytes(self._reply.body))
        except P.PduError as exc:
            self.error = f"malformed IAS answer: {exc}"
            return [], None
