"""IrLAP quality-of-service parameters: PI/PL/PV coding, negotiation and line capacity.

SNRM and UA frames carry a list of parameters, each ``PI, PL, PV`` (identifier, length, value). Every
parameter is a bit field: a station sets one bit per value it supports. Two kinds exist:

* type 0 (baud rate, link disconnect time): both stations use the highest bit set in the AND of both
  fields;
* type 1 (everything else): per station. The bits a station sends state what *it* can receive or
  needs, so they bind the *peer's* transmissions: my data size and window are the peer's, the
  turnaround I must leave before transmitting is the peer's minimum turnaround, and so on.

The value in force is the one of the highest set bit. Parameters that are absent take the IrLAP
defaults (9600 bit/s, 500 ms, 64 bytes, window 1, 12 BOFs, 10 ms, 3 s).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from irlap.errors import QosError

# Values by bit number, lowest bit first.
BAUD_RATES: tuple[int, ...] = (2400, 9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000, 16000000)
MAX_TURNAROUND_MS: tuple[int, ...] = (500, 250, 100, 50)
DATA_SIZES: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
WINDOW_SIZES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
# Bit 3 is 5 in the Linux stack and 6 in other sources; we follow Linux (see docs/qos.md).
ADDITIONAL_BOFS: tuple[int, ...] = (48, 24, 12, 5, 3, 2, 1, 0)
MIN_TURNAROUND_US: tuple[int, ...] = (10000, 5000, 1000, 500, 100, 50, 10, 0)
LINK_DISCONNECT_S: tuple[int, ...] = (3, 8, 12, 16, 20, 25, 30, 40)
#: line bytes a frame adds to its data: address, control, FCS (2), BOF and EOF
FRAME_OVERHEAD = 6

PI_BAUD = 0x01
PI_MAX_TURNAROUND = 0x82
PI_DATA_SIZE = 0x83
PI_WINDOW_SIZE = 0x84
PI_ADDITIONAL_BOFS = 0x85
PI_MIN_TURNAROUND = 0x86
PI_LINK_DISCONNECT = 0x08

# field name -> (PI, value table). The order is the one the Linux stack and most peers emit.
_PARAMETERS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("baud", PI_BAUD, BAUD_RATES),
    ("max_turnaround", PI_MAX_TURNAROUND, MAX_TURNAROUND_MS),
    ("data_size", PI_DATA_SIZE, DATA_SIZES),
    ("window_size", PI_WINDOW_SIZE, WINDOW_SIZES),
    ("additional_bofs", PI_ADDITIONAL_BOFS, ADDITIONAL_BOFS),
    ("min_turnaround", PI_MIN_TURNAROUND, MIN_TURNAROUND_US),
    ("link_disconnect", PI_LINK_DISCONNECT, LINK_DISCONNECT_S),
)
_BY_PI = {pi: (name, table) for name, pi, table in _PARAMETERS}
_TABLES = {name: table for name, _pi, table in _PARAMETERS}
_UNITS = {
    "baud": "bit/s",
    "max_turnaround": "ms",
    "data_size": "B",
    "window_size": "frames",
    "additional_bofs": "BOFs",
    "min_turnaround": "us",
    "link_disconnect": "s",
}


def _highest_value(bits: int, table: tuple[int, ...]) -> int:
    if bits == 0:
        raise QosError("no bit set in a QoS field")
    index = min(bits.bit_length() - 1, len(table) - 1)
    # bits above the table are reserved; use the highest defined bit that is set
    while index >= 0 and not bits & (1 << index):
        index -= 1
    if index < 0:
        raise QosError(f"QoS field 0x{bits:x} sets only reserved bits")
    return table[index]


def _mask_up_to(table: tuple[int, ...], limit_index: int) -> int:
    return (1 << (limit_index + 1)) - 1


def _bits_up_to(bits: int, index: int) -> int:
    """``bits`` without the bits above ``index``, and with bit ``index`` set: the highest value becomes
    the one at ``index`` (a station that receives a larger value receives that one too)."""
    return bits & ((1 << index) - 1) | 1 << index


def bits_for(table: tuple[int, ...], values: list[int] | tuple[int, ...] | set[int]) -> int:
    """The bit field that offers exactly ``values`` of ``table`` (ValueError for an undefined value)."""
    mask = 0
    for value in values:
        try:
            mask |= 1 << table.index(value)
        except ValueError:
            raise QosError(f"{value} is not a valid value; valid values are {list(table)}") from None
    return mask


@dataclass(frozen=True, slots=True)
class QosParams:
    """The QoS bit fields one station offers in its SNRM or UA.

    Each field is the raw bit mask of the parameter (see the module tables). ``decode`` fills absent
    parameters with their defaults, so ``decode(b"")`` is the IrLAP default station.
    """

    baud: int = 0x0002
    max_turnaround: int = 0x01
    data_size: int = 0x01
    window_size: int = 0x01
    additional_bofs: int = 0x04
    min_turnaround: int = 0x01
    link_disconnect: int = 0x01

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def offer(
        cls,
        *,
        max_baud: int = 115200,
        max_turnaround_ms: int = 500,
        max_data_size: int = 2048,
        max_window: int = 7,
        additional_bofs: int = 0,
        min_turnaround_us: int = 10,
        max_link_disconnect_s: int = 12,
        min_baud: int = 2400,
    ) -> QosParams:
        """A typical offer: every speed from ``min_baud`` to ``max_baud``, every size up to the maxima.

        ``max_turnaround_ms`` is a single value (a station states one max turnaround time);
        ``additional_bofs`` and ``min_turnaround_us`` state what this station needs.
        """
        for name, value, table in (
            ("max_baud", max_baud, BAUD_RATES),
            ("min_baud", min_baud, BAUD_RATES),
            ("max_turnaround_ms", max_turnaround_ms, MAX_TURNAROUND_MS),
            ("max_data_size", max_data_size, DATA_SIZES),
            ("max_window", max_window, WINDOW_SIZES),
            ("additional_bofs", additional_bofs, ADDITIONAL_BOFS),
            ("min_turnaround_us", min_turnaround_us, MIN_TURNAROUND_US),
            ("max_link_disconnect_s", max_link_disconnect_s, LINK_DISCONNECT_S),
        ):
            if value not in table:
                raise QosError(f"{name}={value} is not a valid value; valid values are {list(table)}")
        bauds = [b for b in BAUD_RATES if min_baud <= b <= max_baud]
        if 9600 not in bauds:
            raise QosError("every IrDA station must offer 9600 bit/s")
        return cls(
            baud=bits_for(BAUD_RATES, bauds),
            max_turnaround=bits_for(MAX_TURNAROUND_MS, [max_turnaround_ms]),
            data_size=_mask_up_to(DATA_SIZES, DATA_SIZES.index(max_data_size)),
            window_size=_mask_up_to(WINDOW_SIZES, WINDOW_SIZES.index(max_window)),
            additional_bofs=bits_for(ADDITIONAL_BOFS, [additional_bofs]),
            min_turnaround=bits_for(MIN_TURNAROUND_US, [min_turnaround_us]),
            link_disconnect=_mask_up_to(LINK_DISCONNECT_S, LINK_DISCONNECT_S.index(max_link_disconnect_s)),
        )

    def restrict_bauds(self, speeds: list[int] | tuple[int, ...] | set[int]) -> QosParams:
        """This offer narrowed to the speeds a dongle supports (9600 always stays)."""
        return replace(self, baud=self.baud & (bits_for(BAUD_RATES, [s for s in speeds if s in BAUD_RATES])
                                               | 0x0002))

    def fitted(self, baud: int, max_turnaround_ms: int) -> QosParams:
        """This offer with data size and window trimmed to the line capacity of ``baud`` and a turn of
        ``max_turnaround_ms``.

        Our data size and window bind what the *peer* sends us, so what we advertise must already obey
        the line-capacity rule (:func:`cap_to_line_capacity`) for the speed in force and the time the peer
        holds the line: a peer that trusts a 2048 B x 7 offer at 9600 bit/s sends 1 s frames. The frame
        overhead counted is ours to ask for (our additional BOFs and min turnaround). Only those two
        fields change, and only downwards.
        """
        data_size, window = cap_to_line_capacity(
            self.value("data_size"), self.value("window_size"), baud, max_turnaround_ms,
            additional_bofs=self.value("additional_bofs"), min_turnaround_us=self.value("min_turnaround"))
        return replace(self, data_size=_bits_up_to(self.data_size, DATA_SIZES.index(data_size)),
                       window_size=_bits_up_to(self.window_size, WINDOW_SIZES.index(window)))

    # --- wire format --------------------------------------------------------------------------
    def encode(self) -> bytes:
        """PI/PL/PV list in the usual order; the baud field takes two bytes only when it needs them."""
        out = bytearray()
        for name, pi, _table in _PARAMETERS:
            value = getattr(self, name)
            if name == "baud" and value > 0xFF:
                out += bytes((pi, 2, value & 0xFF, value >> 8))
            else:
                out += bytes((pi, 1, value & 0xFF))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> QosParams:
        """Parse a PI/PL/PV list; unknown PIs are skipped, absent ones take their defaults.

        Raises :class:`QosError` for a truncated list, a zero-length value or a field with no
        defined bit set (a peer that offers nothing cannot be negotiated with).
        """
        fields: dict[str, int] = {}
        pos = 0
        data = bytes(data)
        while pos < len(data):
            if pos + 2 > len(data):
                raise QosError(f"QoS parameter list truncated at byte {pos} (PI 0x{data[pos]:02x} has no length)")
            pi, pl = data[pos], data[pos + 1]
            value_bytes = data[pos + 2 : pos + 2 + pl]
            if len(value_bytes) < pl:
                raise QosError(f"QoS parameter 0x{pi:02x} announces {pl} bytes but only {len(value_bytes)} follow")
            pos += 2 + pl
            if pi not in _BY_PI:
                continue  # unknown parameter: skip, as IrLAP requires
            name, table = _BY_PI[pi]
            if pl == 0:
                raise QosError(f"QoS parameter 0x{pi:02x} ({name}) has an empty value")
            value = int.from_bytes(value_bytes, "little")
            if name == "baud":
                value &= 0xFFFF  # two bytes at most are defined
            else:
                value &= 0xFF
            if value & ((1 << len(table)) - 1) == 0:
                raise QosError(f"QoS parameter 0x{pi:02x} ({name}) = 0x{value:x} sets no defined bit")
            fields[name] = value
        return cls(**fields)

    # --- values -------------------------------------------------------------------------------
    def value(self, name: str) -> int:
        """The value in force for one field (highest set bit), e.g. ``value("data_size") == 2048``."""
        return _highest_value(getattr(self, name), _TABLES[name])

    def values(self, name: str) -> list[int]:
        """Every value offered for one field, lowest first."""
        bits = getattr(self, name)
        return [v for i, v in enumerate(_TABLES[name]) if bits & (1 << i)]

    def describe(self) -> str:
        """One line in words, e.g. ``baud 9600-115200, turn 500 ms, data 2048 B, window 7, ...``."""
        bauds = self.values("baud")
        baud_text = f"{bauds[0]}-{bauds[-1]}" if len(bauds) > 1 else (str(bauds[0]) if bauds else "none")
        return (
            f"baud {baud_text}, max turn {self.value('max_turnaround')} ms, "
            f"data {self.value('data_size')} B, window {self.value('window_size')}, "
            f"+{self.value('additional_bofs')} BOFs, min turn {self.value('min_turnaround')} us, "
            f"disconnect {self.value('link_disconnect')} s"
        )


def line_capacity(baud: int, max_turnaround_ms: int) -> int:
    """Bytes one station may send in one turn at ``baud`` within ``max_turnaround_ms``.

    The IrLAP table of maximum line capacities; it caps window size x data size. Below 115200 bit/s
    only 500 ms is defined; other combinations scale the 500 ms figure linearly.
    """
    if baud not in BAUD_RATES:
        raise QosError(f"{baud} bit/s is not an IrDA speed")
    if max_turnaround_ms not in MAX_TURNAROUND_MS:
        raise QosError(f"{max_turnaround_ms} ms is not an IrDA max turnaround time")
    row = _LINE_CAPACITY[baud]
    index = MAX_TURNAROUND_MS.index(max_turnaround_ms)
    if row[index]:
        return row[index]
    return row[0] * max_turnaround_ms // 500


# bytes per turn for 500, 250, 100, 50 ms (0 = not defined at that speed)
_LINE_CAPACITY: dict[int, tuple[int, int, int, int]] = {
    2400: (100, 0, 0, 0),
    9600: (400, 0, 0, 0),
    19200: (800, 0, 0, 0),
    38400: (1600, 0, 0, 0),
    57600: (2360, 0, 0, 0),
    115200: (4800, 2400, 960, 480),
    576000: (28800, 11520, 5760, 2880),
    1152000: (57600, 28800, 11520, 5760),
    4000000: (200000, 100000, 40000, 20000),
    16000000: (800000, 400000, 160000, 80000),
}


@dataclass(frozen=True, slots=True)
class LinkParams:
    """What one station uses once the link is up: the result of :func:`negotiate`.

    ``tx_*`` bind what *we* send: data size, window, min turnaround and BOFs come from the peer's
    offer (what it can receive), capped by the line capacity of our turn; ``rx_*`` are what the peer
    will send us (from our own offer).
    """

    baud: int
    link_disconnect_s: int
    tx_data_size: int
    tx_window: int
    tx_max_turnaround_ms: int  # how long we may hold the line: our own max turnaround (P timer)
    tx_min_turnaround_us: int  # how long we wait after the peer's last frame before sending
    tx_additional_bofs: int  # extra BOFs the peer needs in front of every frame we send
    rx_data_size: int
    rx_window: int
    rx_max_turnaround_ms: int  # how long the peer may hold the line: the peer's value (our F timer)
    rx_min_turnaround_us: int

    @property
    def n1(self) -> int:
        """F-timer expiries before a "link degraded" warning (0 = off when disconnect is 3 s)."""
        if self.link_disconnect_s <= 3:
            return 0
        return max(1, 3000 // self.rx_max_turnaround_ms)

    @property
    def n2(self) -> int:
        """F-timer expiries before the link is declared lost."""
        return max(1, self.link_disconnect_s * 1000 // self.rx_max_turnaround_ms)

    def describe(self) -> str:
        return (
            f"{self.baud} bit/s, disconnect {self.link_disconnect_s} s; "
            f"tx {self.tx_window}x{self.tx_data_size} B in {self.tx_max_turnaround_ms} ms, "
            f"min turn {self.tx_min_turnaround_us} us, +{self.tx_additional_bofs} BOFs; "
            f"rx {self.rx_window}x{self.rx_data_size} B"
        )


def turn_bytes(data_size: int, window: int, baud: int, *, additional_bofs: int = 0,
               min_turnaround_us: int = 0) -> int:
    """Line bytes of one full turn: ``window`` frames of ``data_size`` plus their framing, then the turnaround.

    Each frame adds :data:`FRAME_OVERHEAD` bytes and the extra BOFs the receiver asked for; the min
    turnaround the receiver needs costs its time in bytes at ``baud``. This is the sum IrLAP 6.6.11
    compares with the line capacity (the Linux stack counts the same).
    """
    return window * (data_size + FRAME_OVERHEAD + additional_bofs) + mtt_xbofs(baud, min_turnaround_us)


def cap_to_line_capacity(data_size: int, window: int, baud: int, max_turnaround_ms: int, *,
                         additional_bofs: int = 0, min_turnaround_us: int = 0) -> tuple[int, int]:
    """Shrink (data size, window) until one turn fits the line capacity (:func:`turn_bytes`).

    IrLAP's order: the window shrinks first; at one frame the data size halves. One 64-byte frame is
    always allowed (a station must be able to send something). E.g. 2048 B x 7 becomes 2048 B x 2 at
    115200 bit/s / 500 ms and 256 B x 1 at 9600 bit/s.
    """
    capacity = line_capacity(baud, max_turnaround_ms)
    index = DATA_SIZES.index(data_size)
    while turn_bytes(DATA_SIZES[index], window, baud, additional_bofs=additional_bofs,
                     min_turnaround_us=min_turnaround_us) > capacity:
        if window > 1:
            window -= 1
        elif index > 0:
            index -= 1
        else:
            break
    return DATA_SIZES[index], window


def negotiate(local: QosParams, remote: QosParams) -> LinkParams:
    """The parameters both stations apply after SNRM/UA (identical rules on both sides)."""
    common_baud = local.baud & remote.baud
    if not common_baud & ((1 << len(BAUD_RATES)) - 1):
        raise QosError(
            f"no common speed: we offer {local.values('baud')}, the peer offers {remote.values('baud')}"
        )
    common_disc = local.link_disconnect & remote.link_disconnect
    baud = _highest_value(common_baud, BAUD_RATES)
    # An empty AND for link disconnect cannot happen with conforming peers (both must support 3 s);
    # fall back to the lowest value rather than refusing the link.
    link_disconnect = _highest_value(common_disc, LINK_DISCONNECT_S) if common_disc else LINK_DISCONNECT_S[0]
    # A station's max turnaround is how long *it* holds the line (the Linux stack's reading: P timer =
    # own value, F timer = peer's value). Below 115200 only 500 ms has a defined line capacity.
    tx_turn = local.value("max_turnaround") if baud >= 115200 else 500
    rx_turn = remote.value("max_turnaround") if baud >= 115200 else 500
    # The same rule binds both directions: the peer's offer fitted to our turn is what we send, our offer
    # fitted to the peer's turn is what we advertise in a UA and what the peer sends us.
    sent = remote.fitted(baud, tx_turn)
    received = local.fitted(baud, rx_turn)
    tx_data, tx_window = sent.value("data_size"), sent.value("window_size")
    rx_data, rx_window = received.value("data_size"), received.value("window_size")
    return LinkParams(
        baud=baud,
        link_disconnect_s=link_disconnect,
        tx_data_size=tx_data,
        tx_window=tx_window,
        tx_max_turnaround_ms=tx_turn,
        tx_min_turnaround_us=remote.value("min_turnaround"),
        tx_additional_bofs=remote.value("additional_bofs"),
        rx_data_size=rx_data,
        rx_window=rx_window,
        rx_max_turnaround_ms=rx_turn,
        rx_min_turnaround_us=local.value("min_turnaround"),
    )


def mtt_xbofs(baud: int, min_turnaround_us: int) -> int:
    """XBOF count that fills a minimum turnaround time at ``baud`` (10 bit times per byte).

    At SIR speeds (<= 115200) the turnaround is filled with XBOFs instead of a sleep, which is
    exact whatever the OS scheduler does.
    """
    return baud * min_turnaround_us // 10_000_000
