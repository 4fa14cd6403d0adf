"""QoS parameters: PI/PL/PV coding, defaults, negotiation and the line-capacity cap."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irlap.errors import QosError
from irlap.qos import (
    BAUD_RATES,
    QosParams,
    cap_to_line_capacity,
    line_capacity,
    mtt_xbofs,
    negotiate,
    turn_bytes,
)

# The SNRM parameters of the oracle's golden frame (tshark 4.0.17 decodes them).
SNRM_QOS = bytes.fromhex("01023e00 820101 83013f 84017f 850180 860103 080107".replace(" ", ""))
UA_QOS = bytes.fromhex("01013e 820101 830107 840101 850180 860101 080107".replace(" ", ""))


def test_decode_golden_snrm_parameters():
    qos = QosParams.decode(SNRM_QOS)
    assert qos.values("baud") == [9600, 19200, 38400, 57600, 115200]
    assert qos.value("baud") == 115200
    assert qos.value("max_turnaround") == 500
    assert qos.value("data_size") == 2048
    assert qos.value("window_size") == 7
    assert qos.value("additional_bofs") == 0
    assert qos.value("min_turnaround") == 5000
    assert qos.value("link_disconnect") == 12


def test_encode_golden_ua_parameters():
    qos = QosParams.decode(UA_QOS)
    assert qos.encode() == UA_QOS
    assert qos.value("data_size") == 256 and qos.value("window_size") == 1


def test_two_byte_baud_field_is_kept():
    qos = QosParams.decode(SNRM_QOS)
    # 0x003e fits one byte, so we emit the short form
    assert qos.encode()[:3] == b"\x01\x01\x3e"
    fast = QosParams(baud=0x0102)
    assert fast.encode()[:4] == b"\x01\x02\x02\x01"
    assert QosParams.decode(fast.encode()).values("baud") == [9600, 4000000]


def test_absent_parameters_take_defaults():
    qos = QosParams.decode(b"")
    assert qos.value("baud") == 9600
    assert qos.value("data_size") == 64
    assert qos.value("window_size") == 1
    assert qos.value("link_disconnect") == 3


def test_unknown_pi_is_skipped():
    qos = QosParams.decode(b"\x99\x03abc" + UA_QOS + b"\x10\x00")
    assert qos == QosParams.decode(UA_QOS)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x01", "truncated"),
        (b"\x01\x02\x3e", "announces 2 bytes"),
        (b"\x83\x00", "empty value"),
        (b"\x84\x01\x00", "no defined bit"),
        (b"\x01\x01\x00", "no defined bit"),
    ],
)
def test_malformed_lists_raise_qos_error(data, words):
    with pytest.raises(QosError, match=words):
        QosParams.decode(data)


def test_offer_and_describe():
    qos = QosParams.offer(max_baud=115200, max_data_size=2048, max_window=7)
    assert qos.values("baud") == [2400, 9600, 19200, 38400, 57600, 115200]
    assert qos.values("window_size") == [1, 2, 3, 4, 5, 6, 7]
    assert "max turn 500 ms" in qos.describe()
    with pytest.raises(QosError):
        QosParams.offer(max_data_size=100)


def test_restrict_bauds_keeps_9600():
    qos = QosParams.offer().restrict_bauds([38400])
    assert qos.values("baud") == [9600, 38400]


# The IrLAP table of maximum line capacities (bytes per turn), as the Linux stack's qos.c has it.
LINE_CAPACITY_TABLE = {
    2400: (100, None, None, None),
    9600: (400, None, None, None),
    19200: (800, None, None, None),
    38400: (1600, None, None, None),
    57600: (2360, None, None, None),
    115200: (4800, 2400, 960, 480),
    576000: (28800, 11520, 5760, 2880),
    1152000: (57600, 28800, 11520, 5760),
    4000000: (200000, 100000, 40000, 20000),
    16000000: (800000, 400000, 160000, 80000),
}


@pytest.mark.parametrize("baud", sorted(LINE_CAPACITY_TABLE))
def test_line_capacity_table(baud):
    for turn, capacity in zip((500, 250, 100, 50), LINE_CAPACITY_TABLE[baud], strict=True):
        if capacity is not None:
            assert line_capacity(baud, turn) == capacity
        else:  # not defined below 115200 (the link uses 500 ms there): the 500 ms figure, scaled
            assert line_capacity(baud, turn) == LINE_CAPACITY_TABLE[baud][0] * turn // 500


def test_line_capacity_rejects_unknown_values():
    with pytest.raises(QosError):
        line_capacity(12345, 500)
    with pytest.raises(QosError):
        line_capacity(9600, 300)


def test_turn_bytes_counts_frame_overhead_and_turnaround():
    # 6 bytes per frame (address, control, FCS, BOF, EOF) plus its extra BOFs, then the min turnaround
    assert turn_bytes(256, 1, 9600) == 262
    assert turn_bytes(2048, 2, 115200, additional_bofs=12, min_turnaround_us=10000) == 2 * 2066 + 115


@pytest.mark.parametrize(
    "data_size, window, baud, turn, expected",
    [
        (2048, 7, 115200, 500, (2048, 2)),  # the window shrinks first
        (2048, 7, 115200, 250, (2048, 1)),
        (2048, 7, 115200, 50, (256, 1)),  # then, at one frame, the data size
        (2048, 7, 9600, 500, (256, 1)),
        (2048, 7, 2400, 500, (64, 1)),  # one frame is always allowed, even when it does not fit
        (64, 7, 9600, 500, (64, 5)),  # 5 x 70 = 350 <= 400 < 6 x 70
        (2048, 7, 4000000, 500, (2048, 7)),  # fits as offered
    ],
)
def test_cap_shrinks_window_first_then_data_size(data_size, window, baud, turn, expected):
    assert cap_to_line_capacity(data_size, window, baud, turn) == expected
    capped_data, capped_window = expected
    if expected[0] > 64:
        assert turn_bytes(capped_data, capped_window, baud) <= line_capacity(baud, turn)


def test_fitted_offer_at_9600_fits_the_line():
    """What we advertise binds what the peer sends: at 9600 it must fit 400 bytes per 500 ms turn."""
    offer = QosParams.offer(max_baud=115200, max_data_size=2048, max_window=7, min_turnaround_us=1000)
    fitted = offer.fitted(9600, 500)
    assert (fitted.value("data_size"), fitted.value("window_size")) == (256, 1)
    assert fitted.value("data_size") * fitted.value("window_size") <= line_capacity(9600, 500)
    # only data size and window change, and only downwards: the other fields are the offer's
    assert fitted.values("data_size") == [64, 128, 256] and fitted.values("window_size") == [1]
    assert (fitted.baud, fitted.min_turnaround, fitted.additional_bofs) == (
        offer.baud, offer.min_turnaround, offer.additional_bofs)
    assert offer.fitted(115200, 500).value("window_size") == 2
    assert offer.fitted(16000000, 500) == offer


def test_fitted_offer_counts_the_bofs_and_turnaround_it_asks_for():
    needy = QosParams.offer(max_data_size=64, max_window=7, additional_bofs=48, min_turnaround_us=10000)
    fitted = needy.fitted(9600, 500)
    # 64 + 6 + 48 = 118 bytes a frame, 9 bytes of turnaround: 3 frames fit 400 bytes
    assert fitted.value("window_size") == 3


def test_fitted_offer_with_holes_sets_the_capped_bit():
    sparse = QosParams(data_size=0b100001, window_size=0b1000001)  # 64 or 2048 B, window 1 or 7
    fitted = sparse.fitted(9600, 500)
    assert fitted.value("data_size") == 256 and fitted.value("window_size") == 1


@pytest.mark.parametrize("baud", BAUD_RATES)
def test_negotiated_link_matches_what_each_side_advertises(baud):
    """Both stations agree: what we advertise (fitted) is exactly what the peer uses to send to us."""
    wide = QosParams.offer(max_baud=16000000, min_baud=2400)
    only = QosParams(baud=(1 << BAUD_RATES.index(baud)) | 0x2, data_size=0x3F, window_size=0x7F)
    link = negotiate(wide, only)
    mirror = negotiate(only, wide)
    ours = wide.fitted(link.baud, link.rx_max_turnaround_ms)
    assert (ours.value("data_size"), ours.value("window_size")) == (link.rx_data_size, link.rx_window)
    assert (mirror.tx_data_size, mirror.tx_window) == (link.rx_data_size, link.rx_window)
    assert link.rx_data_size * link.rx_window <= max(line_capacity(link.baud, link.rx_max_turnaround_ms), 64)


def test_negotiate_and_rule_for_baud_and_disconnect_per_station_for_rest():
    local = QosParams.offer(max_baud=115200, max_data_size=1024, max_window=4, min_turnaround_us=1000,
                            max_link_disconnect_s=40)
    remote = QosParams.offer(max_baud=57600, max_data_size=256, max_window=7, min_turnaround_us=10,
                             additional_bofs=12, max_link_disconnect_s=12)
    link = negotiate(local, remote)
    assert link.baud == 57600
    assert link.link_disconnect_s == 12
    # what we send is bound by the peer's receive capabilities, capped to line capacity
    assert (link.tx_data_size, link.tx_window) == (256, 7)
    assert link.tx_min_turnaround_us == 10 and link.tx_additional_bofs == 12
    # what the peer sends us is bound by ours: 1024 x 4 does not fit 2360 B at 57600
    assert (link.rx_data_size, link.rx_window) == (1024, 2)
    assert link.rx_min_turnaround_us == 1000
    assert link.n2 == 12 * 1000 // 500 and link.n1 == 6
    # symmetry: the other station sees the mirror image
    mirror = negotiate(remote, local)
    assert (mirror.rx_data_size, mirror.rx_window) == (link.tx_data_size, link.tx_window)
    assert mirror.baud == link.baud


def test_n1_off_at_three_seconds():
    link = negotiate(QosParams(), QosParams())
    assert link.link_disconnect_s == 3 and link.n1 == 0 and link.n2 == 6


def test_no_common_baud():
    with pytest.raises(QosError, match="no common speed"):
        negotiate(QosParams(baud=0x20), QosParams(baud=0x02))


def test_mtt_xbofs():
    assert mtt_xbofs(9600, 10000) == 9
    assert mtt_xbofs(115200, 10000) == 115
    assert mtt_xbofs(115200, 0) == 0


field_bits = {
    "baud": st.integers(1, 0x3FF),
    "max_turnaround": st.integers(1, 0x0F),
    "data_size": st.integers(1, 0x3F),
    "window_size": st.integers(1, 0x7F),
    "additional_bofs": st.integers(1, 0xFF),
    "min_turnaround": st.integers(1, 0xFF),
    "link_disconnect": st.integers(1, 0xFF),
}


@given(st.builds(QosParams, **field_bits))
def test_encode_decode_round_trip(qos):
    assert QosParams.decode(qos.encode()) == qos


@given(st.builds(QosParams, **field_bits), st.builds(QosParams, **field_bits))
def test_negotiation_never_exceeds_line_capacity(a, b):
    try:
        link = negotiate(a, b)
    except QosError:
        assert not a.baud & b.baud
        return
    capacity = line_capacity(link.baud, link.tx_max_turnaround_ms)
    assert link.tx_data_size * link.tx_window <= max(capacity, link.tx_data_size)
    assert link.rx_data_size * link.rx_window <= max(line_capacity(link.baud, link.rx_max_turnaround_ms),
                                                     link.rx_data_size)
    if link.tx_window > 1:  # more than one frame only when the whole turn fits, overhead included
        assert turn_bytes(link.tx_data_size, link.tx_window, link.baud, additional_bofs=link.tx_additional_bofs,
                          min_turnaround_us=link.tx_min_turnaround_us) <= capacity


@given(st.binary(max_size=64))
def test_garbage_only_raises_qos_error(data):
    try:
        QosParams.decode(data)
    except QosError:
        pass
