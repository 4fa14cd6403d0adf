"""QoS parameters: PI/PL/PV coding, defaults, negotiation and the line-capacity cap."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irlap.errors import QosError
from irlap.qos import (
    QosParams,
    cap_to_line_capacity,
    line_capacity,
    mtt_xbofs,
    negotiate,
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


def test_line_capacity_table():
    assert line_capacity(115200, 500) == 4800
    assert line_capacity(115200, 50) == 480
    assert line_capacity(9600, 500) == 400
    assert line_capacity(57600, 500) == 2360
    assert line_capacity(9600, 250) == 200
    with pytest.raises(QosError):
        line_capacity(12345, 500)


def test_cap_keeps_data_size_and_shrinks_window():
    assert cap_to_line_capacity(2048, 7, 115200, 500) == (2048, 2)
    assert cap_to_line_capacity(2048, 7, 9600, 500) == (256, 1)
    assert cap_to_line_capacity(64, 7, 9600, 500) == (64, 6)


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
    assert link.tx_data_size * link.tx_window <= max(line_capacity(link.baud, link.tx_max_turnaround_ms),
                                                     link.tx_data_size)


@given(st.binary(max_size=64))
def test_garbage_only_raises_qos_error(data):
    try:
        QosParams.decode(data)
    except QosError:
        pass
