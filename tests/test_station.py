"""The IrLAP station alone, with an explicit clock: frames in, frames, speed changes and deadlines out."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irlap import frames as F
from irlap.errors import IrLAPError
from irlap.qos import QosParams, line_capacity, mtt_xbofs, turn_bytes
from irlap.station import (
    FAST_POLL,
    LOG_EXPIRY,
    MAX_LOGGED_DEVICES,
    MEDIA_BUSY,
    NDM_XBOFS,
    SLOT_TIMEOUT,
    Connected,
    Data,
    Disconnected,
    DisconnectReason,
    Discovered,
    DiscoveryIndication,
    LinkDegraded,
    LinkReset,
    SetSpeed,
    State,
    Station,
    TestResult,
    Transmit,
    UIData,
)

A = 0x11111111
B = 0x22222222
CA = 0x2A


def station(address=A, **kwargs) -> Station:
    kwargs.setdefault("rng", random.Random(7))
    kwargs.setdefault("info", F.DiscoveryInfo.make("me" if address == A else "peer", hints=0x8420))
    return Station(address, **kwargs)


def frames_out(st: Station) -> list[F.Frame]:
    """What the station sends, after taking the turn it defers to the instant a poll arrived."""
    if st.pending_turn is not None:
        st.handle_timer(st.pending_turn)
    return [F.parse(a.frame) for a in st.take_output() if isinstance(a, Transmit)]


def tx_time(action: Transmit, baud: int) -> float:
    return len(action.wire) * 10 / baud


# --- discovery ---------------------------------------------------------------------------------------
def test_discovery_initiator_slots_and_final():
    st = station()
    st.discover(6, now=0.0)
    [action] = st.take_output()
    first = F.parse(action.frame)
    assert isinstance(first, F.XIDCommand) and first.slot == 0 and first.slots == 6 and first.info is None
    assert action.xbofs == NDM_XBOFS
    assert st.next_deadline() == pytest.approx(SLOT_TIMEOUT)
    for slot in range(1, 6):
        st.handle_timer(slot * SLOT_TIMEOUT)
        [frame] = frames_out(st)
        assert frame.slot == slot
    response = F.XIDResponse(source=B, dest=A, slots=6, slot=5, info=F.DiscoveryInfo.make("peer", hints=0x8420))
    st.receive(response.to_bytes(), now=5 * SLOT_TIMEOUT + 0.03)
    st.handle_timer(6 * SLOT_TIMEOUT)
    [final] = frames_out(st)
    assert final.is_final and final.info.nickname == "me"
    [event] = st.take_events()
    assert isinstance(event, Discovered) and event.started == 0.0
    assert [(d.address, d.nickname, d.hints) for d in event.devices] == [(B, "peer", b"\x84\x20")]
    assert st.state == State.NDM and st.next_deadline() is None
    assert [d.address for d in st.discovery_log(now=1.0)] == [B]
    assert st.discovery_log(now=100.0) == []  # expired


def test_media_busy_delays_discovery():
    st = station()
    st.sense(now=1.0)
    st.discover(1, now=1.2)
    assert st.take_output() == []
    assert st.next_deadline() == pytest.approx(1.0 + MEDIA_BUSY)
    st.handle_timer(1.5)
    assert isinstance(frames_out(st)[0], F.XIDCommand)


def test_slot_timer_extended_while_a_frame_arrives():
    st = station()
    st.discover(1, now=0.0)
    st.take_output()
    st.sense(now=0.085)  # a response started but has not ended
    st.handle_timer(SLOT_TIMEOUT)
    assert st.take_output() == []
    assert st.next_deadline() > SLOT_TIMEOUT


def test_responder_answers_once_in_its_random_slot():
    st = station(B, rng=random.Random(3))
    answers = []
    for slot in range(8):
        xid = F.XIDCommand(source=A, slots=8, slot=slot)
        st.receive(xid.to_bytes(), now=slot * SLOT_TIMEOUT)
        answers += [(slot, f) for f in frames_out(st)]
    assert len(answers) == 1
    slot, response = answers[0]
    assert isinstance(response, F.XIDResponse) and response.slot == slot and response.dest == A
    assert response.source == B and response.info.nickname == "peer"
    assert st.state == State.REPLY
    final = F.XIDCommand(source=A, slots=8, slot=0xFF, info=F.DiscoveryInfo.make("me"))
    st.receive(final.to_bytes(), now=0.8)
    [event] = st.take_events()
    assert isinstance(event, DiscoveryIndication) and event.device.address == A and event.device.nickname == "me"
    assert st.state == State.NDM


def test_responder_slot_is_never_before_the_first_slot_heard():
    for seed in range(30):
        st = station(B, rng=random.Random(seed))
        st.receive(F.XIDCommand(source=A, slots=6, slot=3).to_bytes(), now=0)
        out = frames_out(st)
        for slot in range(4, 6):
            st.receive(F.XIDCommand(source=A, slots=6, slot=slot).to_bytes(), now=slot * 0.09)
            out += frames_out(st)
        assert len(out) == 1 and out[0].slot >= 3


def test_query_timer_returns_responder_to_ndm():
    st = station(B)
    st.receive(F.XIDCommand(source=A, slots=6, slot=0).to_bytes(), now=0.0)
    st.take_output()
    assert st.state == State.REPLY
    st.handle_timer(st.next_deadline())
    assert st.state == State.NDM


def test_passive_discovery_of_a_final_xid():
    st = station(B)
    final = F.XIDCommand(source=0x33333333, slots=6, slot=0xFF, info=F.DiscoveryInfo.make("other"))
    st.receive(final.to_bytes(), now=2.0)
    assert [d.nickname for d in st.discovery_log(2.0)] == ["other"]
    assert st.take_output() == []


def overheard(address: int, nickname: str = "x") -> bytes:
    return F.XIDCommand(source=address, slots=6, slot=0xFF, info=F.DiscoveryInfo.make(nickname)).to_bytes()


def test_overheard_discovery_log_expires_on_insert():
    """Overheard discovery, a new device every 60 ms (the issue saw 20,000 entries after 20 minutes), and
    nobody reading the log: it stays small (item 5). Five simulated minutes keep the test fast."""
    st = station(B)
    for index in range(5_000):
        st.receive(overheard(0x1000 + index), now=index * 0.06)
        st.take_events()
        assert st.logged_devices <= MAX_LOGGED_DEVICES
    # only devices heard within the expiry time remain: at one every 60 ms, 6 s hold 100 > the cap
    newest = st.discovery_log(now=4_999 * 0.06)
    assert len(newest) == MAX_LOGGED_DEVICES and newest[0].address == 0x1000 + 4_999
    st.receive(overheard(0x42), now=4_999 * 0.06 + LOG_EXPIRY + 0.01)
    assert st.logged_devices == 1  # the insert expired the rest


def test_discovery_log_is_capped_dropping_the_oldest():
    st = station(B)
    for index in range(MAX_LOGGED_DEVICES + 10):
        st.receive(overheard(0x1000 + index), now=index * 0.001)
    assert st.logged_devices == MAX_LOGGED_DEVICES
    kept = {d.address for d in st.discovery_log(now=1.0)}
    assert kept == {0x1000 + i for i in range(10, MAX_LOGGED_DEVICES + 10)}
    # a device heard again is refreshed, not duplicated, and is no longer the oldest
    st.receive(overheard(0x1000 + 10), now=2.0)
    st.receive(overheard(0x9999), now=2.1)
    kept = {d.address for d in st.discovery_log(now=2.1)}
    assert 0x1000 + 10 in kept and 0x1000 + 11 not in kept and 0x9999 in kept
    assert st.discovery_log(now=2.1 + LOG_EXPIRY + 0.01) == [] and st.logged_devices == 0


def test_answers_to_our_discovery_are_capped():
    """A responder flooding one round with new addresses cannot grow the round's list without bound."""
    st = station()
    st.discover(1, now=0.0)
    st.take_output()
    for index in range(MAX_LOGGED_DEVICES * 4):
        st.receive(F.XIDResponse(source=0x5000 + index, dest=A, slots=1, slot=0).to_bytes(), now=0.01)
    st.handle_timer(SLOT_TIMEOUT)
    [event] = [e for e in st.take_events() if isinstance(e, Discovered)]
    assert len(event.devices) == MAX_LOGGED_DEVICES and st.logged_devices == MAX_LOGGED_DEVICES


def test_conflict_flag_makes_responder_pick_a_new_address():
    st = station(B)
    st.receive(F.XIDCommand(source=A, slots=1, slot=0, conflict=True).to_bytes(), now=0.0)
    [response] = frames_out(st)
    assert st.address != B and response.source == st.address


def test_initiator_detects_address_conflict():
    st = station()
    st.discover(6, now=0.0)
    st.take_output()
    for slot, name in ((1, "one"), (4, "two")):
        rsp = F.XIDResponse(source=B, dest=A, slots=6, slot=slot, info=F.DiscoveryInfo.make(name))
        st.receive(rsp.to_bytes(), now=slot * 0.09 + 0.05)
    for slot in range(1, 7):
        st.handle_timer(slot * SLOT_TIMEOUT)
    [event] = [e for e in st.take_events() if isinstance(e, Discovered)]
    assert event.conflict
    st.take_output()
    st.discover(6, now=5.0)
    assert frames_out(st)[0].conflict


# --- NDM services ----------------------------------------------------------------------------------------
def test_test_frame_is_echoed_and_result_reported():
    st = station(B)
    st.receive(F.TEST(source=A, dest=B, info=b"ping").to_bytes(), now=0.0)
    [echo] = frames_out(st)
    assert isinstance(echo, F.TEST) and not echo.command and echo.dest == A and echo.info == b"ping"
    other = station(A)
    other.send_test(B, b"ping", now=0.0)
    assert frames_out(other)[0].info == b"ping"
    other.receive(echo.to_bytes(), now=0.1)
    assert other.take_events() == [TestResult(B, b"ping", 0.1)] and other.test_sent_at == 0.0


def test_ui_frames_both_ways():
    st = station()
    st.send_ui(b"\x70\x01hello", now=0.0)
    [ui] = frames_out(st)
    assert isinstance(ui, F.UI) and ui.info == b"\x70\x01hello"
    st.receive(F.UI(info=b"data").to_bytes(), now=1.0)
    assert st.take_events() == [UIData(b"data", True)]


# --- connection -------------------------------------------------------------------------------------------
OURS = QosParams.offer(max_baud=115200, max_data_size=2048, max_window=7, min_turnaround_us=1000)


def connect_pair(ours=OURS, theirs=OURS):
    """Primary A and secondary B connected, timeline and outputs drained. Returns (primary, secondary, now)."""
    p = station(A, qos=ours)
    s = station(B, qos=theirs)
    p.connect(B, now=0.0)
    [snrm_action] = p.take_output()
    now = tx_time(snrm_action, 9600)
    s.receive(snrm_action.frame, now=now)
    out = s.take_output()
    ua_action = out[0]
    now += tx_time(ua_action, 9600)
    p.receive(ua_action.frame, now=now)
    p.take_output()
    p.take_events()
    s.take_events()
    return p, s, now


def test_primary_sends_snrm_and_switches_speed_before_polling():
    p = station(A, qos=OURS)
    p.connect(B, now=0.0)
    [action] = p.take_output()
    snrm = F.parse(action.frame)
    assert isinstance(snrm, F.SNRM) and snrm.dest == B and snrm.source == A
    assert snrm.qos == OURS.fitted(115200, 500)  # our offer, within the line capacity of 115200 bit/s
    assert 1 <= snrm.new_address <= 0x7E
    theirs = QosParams.offer(max_baud=57600, max_data_size=256, min_turnaround_us=10000)
    ua = F.UA(address=snrm.new_address, source=B, dest=A, qos=theirs)
    p.receive(ua.to_bytes(), now=0.2)
    out = p.take_output()
    assert out[0] == SetSpeed(57600)
    poll = F.parse(out[1].frame)
    assert isinstance(poll, F.RR) and poll.poll_final and poll.command and poll.address == snrm.new_address
    assert out[1].xbofs == mtt_xbofs(57600, 10000)  # the peer's 10 ms turnaround
    [event] = p.take_events()
    assert isinstance(event, Connected) and event.primary and event.params.baud == 57600
    assert event.params.tx_data_size == 256
    assert p.next_deadline() == pytest.approx(0.2 + tx_time(out[1], 57600) + 0.5)


def test_secondary_answers_at_9600_then_switches():
    s = station(B, qos=OURS)
    snrm = F.SNRM(source=A, dest=B, new_address=CA, qos=OURS)
    s.receive(snrm.to_bytes(), now=0.0)
    out = s.take_output()
    assert isinstance(out[0], Transmit) and out[1] == SetSpeed(115200)
    ua = F.parse(out[0].frame)
    assert isinstance(ua, F.UA) and ua.address == CA and ua.source == B and ua.dest == A
    assert ua.qos == OURS.fitted(115200, 500)
    [event] = s.take_events()
    assert isinstance(event, Connected) and not event.primary and s.state == State.NRM_SECONDARY


def test_snrm_for_somebody_else_is_ignored_and_refusal_is_dm():
    s = station(B)
    s.receive(F.SNRM(source=A, dest=0x33333333, new_address=CA, qos=OURS).to_bytes(), now=0.0)
    assert s.take_output() == []
    shy = station(B, accept_connections=False)
    shy.receive(F.SNRM(source=A, dest=B, new_address=CA, qos=OURS).to_bytes(), now=0.0)
    [dm] = frames_out(shy)
    assert isinstance(dm, F.DM) and dm.address == CA


def test_snrm_retried_three_times_then_connect_failed():
    p = station()
    p.connect(B, now=0.0)
    snrms = frames_out(p)
    for _ in range(10):
        deadline = p.next_deadline()
        if deadline is None:
            break
        p.handle_timer(deadline)
        snrms += frames_out(p)
    assert len(snrms) == 3 and all(isinstance(f, F.SNRM) for f in snrms)
    assert p.take_events() == [Disconnected(DisconnectReason.CONNECT_FAILED, B)]
    assert p.state == State.NDM


def test_dm_refuses_connection():
    p = station()
    p.connect(B, now=0.0)
    [snrm] = frames_out(p)
    p.receive(F.DM(address=snrm.new_address).to_bytes(), now=0.1)
    assert p.take_events() == [Disconnected(DisconnectReason.REFUSED, B)]


@pytest.mark.parametrize("peer, we_answer", [(0x7FFFFFFF, True), (0x00000001, False)])
def test_snrm_contention_larger_address_wins(peer, we_answer):
    p = station(0x10000000)
    p.connect(peer, now=0.0)
    p.take_output()
    p.receive(F.SNRM(source=peer, dest=0x10000000, new_address=0x11, qos=OURS).to_bytes(), now=0.05)
    out = frames_out(p)
    assert bool(out and isinstance(out[0], F.UA)) is we_answer
    assert (p.state == State.NRM_SECONDARY) is we_answer


# --- line capacity: what we advertise and what we send ----------------------------------------------------
SLOW = QosParams.offer(max_baud=9600, max_data_size=2048, max_window=7, min_turnaround_us=1000)


def fits_9600(qos: QosParams) -> bool:
    data, window = qos.value("data_size"), qos.value("window_size")
    return data * window <= line_capacity(9600, 500) and turn_bytes(
        data, window, 9600, additional_bofs=qos.value("additional_bofs"),
        min_turnaround_us=qos.value("min_turnaround")) <= line_capacity(9600, 500)


def test_ua_at_9600_advertises_what_fits_the_line():
    """Our UA's data size and window bind the peer: at 9600 bit/s, 2048 B x 7 would be 15 s of air per turn."""
    s = station(B, qos=OURS)  # we could do 2048 x 7 at 115200
    s.receive(F.SNRM(source=A, dest=B, new_address=CA, qos=SLOW).to_bytes(), now=0.0)
    ua = F.parse(s.take_output()[0].frame)
    assert isinstance(ua, F.UA) and fits_9600(ua.qos)
    assert (ua.qos.value("data_size"), ua.qos.value("window_size")) == (256, 1)
    [event] = s.take_events()
    assert (event.params.rx_data_size, event.params.rx_window) == (256, 1)


def test_snrm_advertises_what_fits_the_fastest_speed_offered():
    p = station(A, qos=SLOW)
    p.connect(B, now=0.0)
    snrm = F.parse(p.take_output()[0].frame)
    assert fits_9600(snrm.qos) and snrm.qos.values("baud") == SLOW.values("baud")
    fast = station(A, qos=OURS)
    fast.connect(B, now=0.0)
    snrm = F.parse(fast.take_output()[0].frame)
    assert (snrm.qos.value("data_size"), snrm.qos.value("window_size")) == (2048, 2)  # 115200 / 500 ms


@pytest.mark.parametrize("ours, theirs", [(OURS, SLOW), (SLOW, OURS), (OURS, OURS), (SLOW, SLOW)])
def test_both_stations_agree_on_each_direction(ours, theirs):
    """Our SNRM offer is fitted to our fastest speed, yet a slower link ends with the same sizes on both sides."""
    p, s, _now = connect_pair(ours, theirs)
    assert (p.params.tx_data_size, p.params.tx_window) == (s.params.rx_data_size, s.params.rx_window)
    assert (p.params.rx_data_size, p.params.rx_window) == (s.params.tx_data_size, s.params.tx_window)


def test_peer_that_advertises_too_much_is_clamped_on_our_sending_side():
    p = station(A, qos=SLOW)
    p.connect(B, now=0.0)
    snrm = F.parse(p.take_output()[0].frame)
    greedy = QosParams.offer(max_baud=115200, max_data_size=2048, max_window=7)
    p.receive(F.UA(address=snrm.new_address, source=B, dest=A, qos=greedy).to_bytes(), now=0.2)
    [poll] = frames_out(p)
    assert p.params.baud == 9600 and (p.params.tx_data_size, p.params.tx_window) == (256, 1)
    with pytest.raises(IrLAPError, match="data size"):
        p.send(bytes(257), now=0.3)
    for _ in range(7):
        p.send(bytes(256), now=0.3)
    p.receive(F.RR(address=p.ca, command=False, poll_final=True, nr=0).to_bytes(), now=0.5)
    turn = frames_out(p)
    sent = sum(len(f.info) for f in turn if isinstance(f, F.IFrame))
    assert len(turn) == 1 and sent <= line_capacity(9600, 500)


# --- NRM ------------------------------------------------------------------------------------------------
def test_window_of_i_frames_with_poll_on_the_last():
    p, s, now = connect_pair()
    assert p.params.tx_window == 2 and p.params.tx_data_size == 2048  # line capacity at 115200 / 500 ms
    # answer the first poll so the primary holds the token
    s.receive(F.RR(address=p.ca, nr=0).to_bytes(), now=now)
    [rr] = frames_out(s)
    p.receive(rr.to_bytes(), now=now + 0.01)
    p.handle_timer(now + 0.01)  # the turn: nothing to send yet, so the primary idles on its P timer
    asked = now + 0.01 + FAST_POLL / 2  # before that timer is due
    for chunk in (b"a", b"b", b"c"):
        p.send(chunk, now=asked)
    # requests made at one instant go out together: the turn is a timer due now
    assert p.next_deadline() == pytest.approx(asked)
    p.handle_timer(asked)
    i_frames = frames_out(p)
    assert [(f.ns, f.poll_final, f.info) for f in i_frames] == [(0, False, b"a"), (1, True, b"b")]
    for frame in i_frames:
        s.receive(frame.to_bytes(), now=now + 0.05)
    [ack] = frames_out(s)
    assert isinstance(ack, F.RR) and ack.nr == 2 and ack.poll_final and not ack.command
    assert [e.data for e in s.take_events() if isinstance(e, Data)] == [b"a", b"b"]
    p.receive(ack.to_bytes(), now=now + 0.1)
    [third] = frames_out(p)
    assert third.ns == 2 and third.info == b"c" and third.poll_final


@pytest.mark.parametrize("grace", [False, True])
def test_an_answer_waits_for_data_while_the_port_keeps_the_turnaround_anyway(grace):
    """A port that keeps the peer's minimum turnaround from the end of the frame heard (an MCS7780 at FIR) leaves
    the line idle that long whatever we do: an answer with nothing to send waits for part of it, and data the
    layers above queue meanwhile goes out in this turn instead of after an RR and another turn pair (two per
    64 kB OBEX packet at 4 Mbit/s). Elsewhere an answer goes at once."""
    p, s, now = connect_pair()
    assert p.params.tx_min_turnaround_us == 1000 and s.params.tx_min_turnaround_us == 1000
    p.turnaround_from_rx = s.turnaround_from_rx = grace
    # the secondary, polled with nothing to say
    s.receive(F.RR(address=p.ca, nr=0).to_bytes(), now=now)
    early = frames_out(s)
    if grace:
        assert early == [] and s.next_deadline() == pytest.approx(now + 0.0005)
        s.send(b"reply", now=now + 0.0002)  # the layers above answer within the grace: at once, in this turn
        s.handle_timer(now + 0.0002)
        [answer] = frames_out(s)
        assert isinstance(answer, F.IFrame) and answer.info == b"reply" and answer.poll_final
    else:
        [answer] = early
        assert isinstance(answer, F.RR) and answer.poll_final
        s.send(b"reply", now=now + 0.0002)  # too late for this turn
        now += 0.001
        p.receive(answer.to_bytes(), now=now)
        assert frames_out(p) == []  # nothing in the answer: the primary idles (FAST_POLL), then polls
        p.handle_timer(p.next_deadline())
        [poll] = frames_out(p)
        s.receive(poll.to_bytes(), now=now + 0.003)
        [answer] = frames_out(s)
        assert isinstance(answer, F.IFrame) and answer.info == b"reply"
    # the primary, after data, with nothing to send
    now += 0.005
    p.receive(answer.to_bytes(), now=now)
    if grace:
        assert frames_out(p) == []  # it waits
        p.send(b"next", now=now + 0.0003)
        p.handle_timer(now + 0.0003)
        [sent] = frames_out(p)
        assert isinstance(sent, F.IFrame) and sent.info == b"next" and sent.poll_final
        s.receive(sent.to_bytes(), now=now + 0.002)
        assert frames_out(s) == []
        s.handle_timer(now + 0.002 + 0.0005)  # nothing came: a bare answer at the end of the grace
        [ack] = frames_out(s)
        assert isinstance(ack, F.RR) and ack.nr == 1 and ack.poll_final
    else:
        [poll] = frames_out(p)
        assert isinstance(poll, F.RR) and poll.poll_final


def test_a_reset_during_the_answer_grace_leaves_no_turn_behind():
    """The primary resets the link while the secondary's bare answer waits its grace: after the UA the secondary
    speaks only when polled (the old turn fired later as an unpolled RR with the F bit)."""
    p, s, now = connect_pair()
    s.turnaround_from_rx = True
    s.receive(F.RR(address=p.ca, nr=0).to_bytes(), now=now)
    assert frames_out(s) == [] and s.next_deadline() == pytest.approx(now + 0.0005)  # waiting its grace
    s.receive(F.SNRM(address=p.ca).to_bytes(), now=now + 0.0001)  # a reset within the grace
    assert [type(f) for f in frames_out(s)] == [F.UA]
    s.handle_timer(now + 0.001)
    assert frames_out(s) == []


def test_idle_primary_polls_quickly_then_backs_off_to_its_max_turnaround():
    p, s, now = connect_pair()
    s.receive(F.RR(address=p.ca, nr=0).to_bytes(), now=now)  # the first poll, answered: A holds the token
    [rr] = frames_out(s)
    p.receive(rr.to_bytes(), now=now)
    frames_out(p)  # the turn: nothing to send, so A idles on its P timer

    def next_idle_wait(now, secondary_data=b""):
        """Let the P timer expire: A polls, B answers (with data if given); how long A idles next."""
        now = p.next_deadline()
        p.handle_timer(now)
        [poll] = frames_out(p)
        assert isinstance(poll, F.RR) and poll.poll_final
        if secondary_data:
            s.send(secondary_data, now=now)
        s.receive(poll.to_bytes(), now=now)
        answers = frames_out(s)
        for frame in answers:
            p.receive(frame.to_bytes(), now=now)
        if secondary_data:  # data in the answer: A polls again at once, B has nothing more
            [again] = frames_out(p)
            s.receive(again.to_bytes(), now=now)
            for frame in frames_out(s):
                p.receive(frame.to_bytes(), now=now)
        assert frames_out(p) == []
        return round(p.next_deadline() - now, 4), now

    waits = [round(p.next_deadline() - now, 4)]
    for _ in range(9):
        wait, now = next_idle_wait(now)
        waits.append(wait)
    # quick polls while B may be about to answer, then our max turnaround time (500 ms), where idle settles
    assert waits == [0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.5, 0.5]
    wait, now = next_idle_wait(now, b"response")
    assert [e.data for e in p.take_events() if isinstance(e, Data)] == [b"response"]
    assert wait == FAST_POLL  # data flowed: quick polls again


def test_backlog_counts_data_until_the_peer_acknowledges_it():
    p, s, now = connect_pair()
    s.receive(F.RR(address=p.ca, nr=0).to_bytes(), now=now)
    [rr] = frames_out(s)
    p.receive(rr.to_bytes(), now=now)
    frames_out(p)
    assert p.backlog == (0, 0)
    p.send(b"abc", now=now + 0.02)
    p.send(b"de", now=now + 0.02)
    assert p.backlog == (2, 5)  # queued
    p.handle_timer(now + 0.02)
    frames = frames_out(p)
    assert len(frames) == 2 and p.backlog == (2, 5)  # sent, not yet acknowledged
    for frame in frames:
        s.receive(frame.to_bytes(), now=now + 0.05)
    [ack] = frames_out(s)
    p.receive(ack.to_bytes(), now=now + 0.1)
    assert p.backlog == (0, 0)


def test_secondary_sends_its_data_when_polled():
    p, s, now = connect_pair()
    s.send(b"from secondary", now=now)
    assert frames_out(s) == []  # no token yet
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    [i_frame] = frames_out(s)
    assert isinstance(i_frame, F.IFrame) and i_frame.poll_final and not i_frame.command
    p.receive(i_frame.to_bytes(), now=now + 0.05)
    assert p.take_events() == [Data(b"from secondary")]
    [rr] = frames_out(p)  # the primary acknowledges at once
    assert isinstance(rr, F.RR) and rr.nr == 1 and rr.poll_final


def test_min_turnaround_and_additional_bofs_in_xbofs():
    needy = QosParams.offer(min_turnaround_us=5000, additional_bofs=24)
    p, s, now = connect_pair(theirs=needy)
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    s.take_output()
    p.receive(F.RR(address=p.ca, command=False, nr=0).to_bytes(), now=now)
    p.send(b"x" * 10, now=now)
    p.send(b"y" * 10, now=now)
    p.handle_timer(now)
    actions = [a for a in p.take_output() if isinstance(a, Transmit)]
    assert actions[0].xbofs == mtt_xbofs(115200, 5000) + 24
    assert actions[1].xbofs == 24


def test_out_of_sequence_frame_is_discarded_and_primary_goes_back():
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    p.receive(frames_out(s)[0].to_bytes(), now=now)
    p.send(b"one", now=now)
    p.send(b"two", now=now)
    p.handle_timer(now)
    first, second = frames_out(p)
    s.receive(second.to_bytes(), now=now + 0.1)  # the first was lost
    [ack] = frames_out(s)
    assert ack.nr == 0 and s.take_events() == []
    p.receive(ack.to_bytes(), now=now + 0.2)
    resent = frames_out(p)
    assert [(f.ns, f.info) for f in resent] == [(0, b"one"), (1, b"two")]
    assert p.stats.retransmissions == 2


def test_rej_and_srej_resend():
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    p.receive(frames_out(s)[0].to_bytes(), now=now)
    p.send(b"one", now=now)
    p.send(b"two", now=now)
    p.handle_timer(now)
    frames_out(p)
    p.receive(F.SREJ(address=p.ca, command=False, poll_final=True, nr=0).to_bytes(), now=now + 0.1)
    [again] = frames_out(p)
    assert (again.ns, again.info) == (0, b"one")
    p.receive(F.REJ(address=p.ca, command=False, poll_final=True, nr=1).to_bytes(), now=now + 0.2)
    [again] = frames_out(p)
    assert (again.ns, again.info, again.poll_final) == (1, b"two", True)


def primary_with_frames_in_flight(count=2):
    """A connected primary that sent ``count`` I-frames (ns 0..count-1) and waits for the answer."""
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    p.receive(frames_out(s)[0].to_bytes(), now=now)
    for index in range(count):
        p.send(b"frame %d" % index, now=now)
    p.handle_timer(now)
    assert len(frames_out(p)) == count
    return p, now


def test_repeated_srej_is_queued_once_and_retransmissions_stay_within_the_window():
    """300 SREJs for one frame resend it once, not 300 times in one turn (issue 13, item 4)."""
    p, now = primary_with_frames_in_flight(2)
    for _ in range(300):
        p.receive(F.SREJ(address=p.ca, command=False, poll_final=False, nr=0).to_bytes(), now=now + 0.1)
    p.receive(F.SREJ(address=p.ca, command=False, poll_final=True, nr=0).to_bytes(), now=now + 0.1)
    resent = frames_out(p)
    assert [(f.ns, f.info) for f in resent] == [(0, b"frame 0")]
    assert p.stats.retransmissions == 1


def test_srej_for_each_frame_in_flight_resends_each_once_within_the_window():
    p, now = primary_with_frames_in_flight(2)
    for nr in (0, 1):  # SREJ 1 also acknowledges frame 0, whose pending resend is then dropped
        for _ in range(50):
            p.receive(F.SREJ(address=p.ca, command=False, nr=nr).to_bytes(), now=now + 0.1)
    for chunk in (b"new 1", b"new 2", b"new 3"):
        p.send(chunk, now=now + 0.1)
    p.receive(F.RR(address=p.ca, command=False, poll_final=True, nr=1).to_bytes(), now=now + 0.1)
    turn = frames_out(p)
    assert len(turn) <= p.params.tx_window == 2
    assert [(f.ns, f.info) for f in turn] == [(1, b"frame 1"), (2, b"new 1")]
    assert p.stats.retransmissions == 1


def test_secondary_repeated_srej_and_rej_stay_bounded():
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    frames_out(s)
    for chunk in (b"one", b"two"):
        s.send(chunk, now=now)
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now + 0.1)
    assert len(frames_out(s)) == 2
    for _ in range(100):
        s.receive(F.SREJ(address=s.ca, nr=1, poll_final=False).to_bytes(), now=now + 0.2)
        s.receive(F.REJ(address=s.ca, nr=1, poll_final=False).to_bytes(), now=now + 0.2)
    assert s.backlog[0] == 1  # "one" is acknowledged, "two" waits once
    s.receive(F.RR(address=s.ca, nr=1).to_bytes(), now=now + 0.3)
    turn = frames_out(s)
    assert [(f.ns, f.info) for f in turn] == [(1, b"two")]


def test_a_late_final_then_the_real_one_neither_resets_nor_duplicates():
    """A slow peer answers an old poll after our next window went out: that stale final makes us go back,
    and the real final that follows acknowledges the frame we had sent. It is acknowledged, not resent
    (found by test_station_props: the frame was resent after a reset and delivered twice)."""
    p, now = primary_with_frames_in_flight(1)
    p.receive(F.RR(address=p.ca, command=False, poll_final=True, nr=0).to_bytes(), now=now + 0.1)  # stale
    p.receive(F.RR(address=p.ca, command=False, poll_final=True, nr=1).to_bytes(), now=now + 0.1)  # real
    turn = frames_out(p)
    assert p.stats.resets == 0 and not any(isinstance(f, (F.IFrame, F.SNRM)) for f in turn)
    assert p.backlog == (0, 0)


def test_rnr_stops_data_and_local_busy_sends_rnr():
    p, s, now = connect_pair()
    p.receive(F.RNR(address=p.ca, command=False, nr=0).to_bytes(), now=now)
    p.send(b"held", now=now)
    assert frames_out(p) == []
    p.handle_timer(p.next_deadline())
    [poll] = frames_out(p)
    assert isinstance(poll, F.RR) and poll.poll_final
    s.set_local_busy(True, now=now)
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    [busy] = frames_out(s)
    assert isinstance(busy, F.RNR)


def test_f_timer_polls_again_then_n1_degraded_then_n2_link_lost():
    p, s, now = connect_pair()
    assert p.params.n2 == 24 and p.params.n1 == 6  # 12 s / 500 ms, 3 s / 500 ms
    polls, events, actions = 0, [], []
    while p.state == State.NRM_PRIMARY:
        p.handle_timer(p.next_deadline())
        out = p.take_output()
        actions += out
        polls += sum(isinstance(a, Transmit) and F.parse(a.frame).poll_final for a in out)
        events += p.take_events()
    assert polls == 23
    assert [type(e) for e in events] == [LinkDegraded, Disconnected]
    assert events[-1].reason == DisconnectReason.LINK_LOST
    assert actions[-1] == SetSpeed(9600) and p.baud == 9600 and p.next_deadline() is None


def test_secondary_watchdog_loses_the_link():
    p, s, now = connect_pair()
    events = []
    while s.state == State.NRM_SECONDARY:
        deadline = s.next_deadline()
        s.handle_timer(deadline)
        events += s.take_events()
    assert now + 11.9 < deadline <= now + 12.0  # the link-disconnect time since the last frame
    assert isinstance(events[0], LinkDegraded) and events[-1] == Disconnected(DisconnectReason.LINK_LOST, A)


def test_invalid_nr_secondary_frmr_then_primary_resets():
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=5).to_bytes(), now=now)  # acknowledges frames never sent
    [frmr] = frames_out(s)
    assert isinstance(frmr, F.FRMR) and frmr.z and frmr.rejected_control == 0xB1
    p.receive(frmr.to_bytes(), now=now + 0.05)
    [reset] = frames_out(p)
    assert isinstance(reset, F.SNRM) and reset.is_reset and reset.address == p.ca
    s.receive(reset.to_bytes(), now=now + 0.1)
    [ua] = frames_out(s)
    assert isinstance(ua, F.UA) and s.take_events() == [LinkReset(by_peer=True)]
    p.receive(ua.to_bytes(), now=now + 0.15)
    assert p.take_events() == [LinkReset(by_peer=False)] and p.stats.resets == 1
    assert isinstance(frames_out(p)[0], F.RR)


def test_undefined_control_gets_frmr_w():
    p, s, now = connect_pair()
    s.receive(bytes((s.ca << 1 | 1, 0x77, 0x00)), now=now)  # undefined, P set, with an I-field
    [frmr] = frames_out(s)
    assert frmr.w and frmr.x and frmr.rejected_control == 0x77


def test_primary_resets_on_invalid_nr():
    p, s, now = connect_pair()
    p.receive(F.RR(address=p.ca, command=False, nr=4).to_bytes(), now=now)
    [reset] = frames_out(p)
    assert isinstance(reset, F.SNRM) and reset.is_reset


def test_disconnect_by_primary():
    p, s, now = connect_pair()
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    p.receive(frames_out(s)[0].to_bytes(), now=now)
    p.disconnect(now=now + 0.1)
    p.handle_timer(now + 0.1)
    [disc] = frames_out(p)
    assert isinstance(disc, F.DISC)
    s.receive(disc.to_bytes(), now=now + 0.2)
    out = s.take_output()
    assert isinstance(F.parse(out[0].frame), F.UA) and out[1] == SetSpeed(9600)
    assert s.take_events() == [Disconnected(DisconnectReason.PEER_REQUEST, A)]
    p.receive(out[0].frame, now=now + 0.3)
    assert p.take_events() == [Disconnected(DisconnectReason.USER_REQUEST, B)] and p.state == State.NDM


def test_disconnect_by_secondary_via_rd():
    p, s, now = connect_pair()
    s.disconnect(now=now)
    s.receive(F.RR(address=s.ca, nr=0).to_bytes(), now=now)
    [rd] = frames_out(s)
    assert isinstance(rd, F.RD)
    p.receive(rd.to_bytes(), now=now + 0.05)
    [disc] = frames_out(p)
    s.receive(disc.to_bytes(), now=now + 0.1)
    [ua] = frames_out(s)
    assert s.take_events() == [Disconnected(DisconnectReason.USER_REQUEST, A)]
    p.receive(ua.to_bytes(), now=now + 0.2)
    assert p.state == State.NDM


def test_api_misuse_raises():
    st = station()
    with pytest.raises(IrLAPError):
        st.send(b"x", now=0.0)
    with pytest.raises(IrLAPError):
        st.discover(5, now=0.0)
    with pytest.raises(IrLAPError):
        Station(0)
    p, s, now = connect_pair()
    with pytest.raises(IrLAPError, match="data size"):
        p.send(bytes(4096), now=now)
    with pytest.raises(IrLAPError):
        p.connect(B, now=now)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(0, 3))
def test_hostile_frames_never_raise(garbage, phase):
    """Random bytes and random valid frames in any state: the station reacts, never raises."""
    p, s, now = connect_pair()
    target = [p, s, station(), station(B)][phase]
    for index, data in enumerate(garbage):
        if data[:1]:
            data = bytes((target.ca << 1 | (index & 1) if target.ca is not None else data[0],)) + data[1:]
        target.receive(data, now=now + index * 0.01)
        target.take_output()
        target.take_events()
        deadline = target.next_deadline()
        if deadline is not None and index % 3 == 0:
            target.handle_timer(deadline)


def test_new_snrm_from_our_primary_replaces_the_link():
    p, s, now = connect_pair()
    s.receive(F.SNRM(source=A, dest=B, new_address=0x33, qos=OURS).to_bytes(), now=now + 1)
    out = s.take_output()
    assert out[0] == SetSpeed(9600) and isinstance(F.parse(out[1].frame), F.UA) and out[2] == SetSpeed(115200)
    events = s.take_events()
    assert isinstance(events[0], Disconnected) and isinstance(events[1], Connected) and s.ca == 0x33


def run_pair(p: Station, s: Station, until: float, lose=lambda frame, sender: False, now: float = 0.0) -> float:
    """Two stations wired back to back (no line time), speed changes honoured: a frame reaches the other
    only when both are at the same speed; ``lose(frame, sender)`` drops a frame (the receiver senses energy)."""
    line = {id(p): p.baud, id(s): s.baud}  # the speed each port is at, as its actions are carried out
    while now < until:
        moved = False
        for sender, receiver in ((p, s), (s, p)):
            for action in sender.take_output():
                moved = True
                if isinstance(action, SetSpeed):
                    line[id(sender)] = action.baud
                    continue
                receiver.sense(now)
                if line[id(sender)] == line[id(receiver)] and not lose(F.parse(action.frame), sender):
                    receiver.receive(action.frame, now)
        if moved:
            continue
        deadlines = [d for d in (p.next_deadline(), s.next_deadline()) if d is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        p.handle_timer(now)
        s.handle_timer(now)
    return now


def test_a_lost_ua_is_recovered_by_retrying_until_the_peer_gave_up_the_half_open_link():
    """The secondary answered UA and went to the new speed; the UA was garbled. The primary's SNRMs at
    9600 are not heard until the secondary's link-disconnect time has passed, so the primary that heard
    a (garbled) answer keeps trying that long instead of giving up after N3 tries."""
    qos = QosParams.offer(max_link_disconnect_s=3)
    p, s = station(A, qos=qos), station(B, qos=qos)
    p.connect(B, now=0.0)
    lost = []

    def lose_first_ua(frame, sender):
        if isinstance(frame, F.UA) and not lost:
            lost.append(frame)
            return True
        return False

    run_pair(p, s, 10.0, lose_first_ua)
    assert lost
    events = p.take_events()
    assert [e for e in events if isinstance(e, Disconnected)] == []
    assert any(isinstance(e, Connected) for e in events) and p.state == State.NRM_PRIMARY


def test_a_silent_device_still_fails_after_three_tries():
    """Nothing heard at all (no device there): the connect fails after N3 SNRMs, as before."""
    p = station(A, qos=QosParams.offer(max_link_disconnect_s=12))
    p.connect(B, now=0.0)
    snrms = frames_out(p)
    while (deadline := p.next_deadline()) is not None:
        p.handle_timer(deadline)
        snrms += frames_out(p)
    assert len(snrms) == 3
    assert p.take_events() == [Disconnected(DisconnectReason.CONNECT_FAILED, B)]


# --- discovery: what the round tells, and the media after it ------------------------------------------------
def run_round(st: Station, slots: int, heard: dict[int, bytes | None]) -> Discovered:
    """One discovery round of ``st``; ``heard[slot]`` is a frame arriving in that slot (None: energy only)."""
    st.discover(slots, now=0.0)
    st.take_output()
    for slot in range(slots):
        start = slot * SLOT_TIMEOUT
        if slot in heard:
            st.sense(now=start + 0.02)
            if heard[slot] is not None:
                st.receive(heard[slot], now=start + 0.03)
        now = start + SLOT_TIMEOUT
        while st.next_deadline() is not None and st.next_deadline() <= now + 0.05 and st.state == State.QUERY:
            now = st.next_deadline()
            st.handle_timer(now)
    [event] = [e for e in st.take_events() if isinstance(e, Discovered)]
    return event


def test_a_round_with_only_good_answers_is_clean_and_garbage_marks_it():
    answer = F.XIDResponse(source=B, dest=A, slots=6, slot=2, info=F.DiscoveryInfo.make("peer")).to_bytes()
    clean = run_round(station(), 6, {2: answer})
    assert [d.address for d in clean.devices] == [B] and not clean.garbled
    collided = run_round(station(), 6, {1: None, 2: answer})  # energy in slot 1 that never made a frame
    assert [d.address for d in collided.devices] == [B] and collided.garbled


def test_a_connect_right_after_discovery_does_not_wait_for_media_busy():
    """IrLAP 6.13.4: the answers to our own round leave the medium free for our SNRM at once."""
    st = station()
    answer = F.XIDResponse(source=B, dest=A, slots=6, slot=5, info=F.DiscoveryInfo.make("peer")).to_bytes()
    run_round(st, 6, {5: answer})
    end = 6 * SLOT_TIMEOUT
    st.take_output()
    st.connect(B, now=end + 0.001)
    [snrm] = frames_out(st)
    assert isinstance(snrm, F.SNRM)


# --- discovery that ends once the wanted device answered (issue 17) -----------------------------------------
C = 0x33333333


def seed_for_slot(slot: int, slots: int = 6) -> int:
    """A seed with which a responder that hears slot 0 first picks ``slot`` (its first random draw)."""
    return next(seed for seed in range(1000) if random.Random(seed).randint(0, slots - 1) == slot)


def three_stations(wanted_slot: int, other_slot: int):
    """The initiator A and the responders B (answers in ``wanted_slot``) and C (in ``other_slot``) on the
    simulated medium."""
    from irlap.sim import Simulator

    sim = Simulator(seed=1)
    nodes = [sim.add(station(A), "A"),
             sim.add(station(B, rng=random.Random(seed_for_slot(wanted_slot))), "B"),
             sim.add(station(C, rng=random.Random(seed_for_slot(other_slot)),
                             info=F.DiscoveryInfo.make("other", hints=0x8420)), "C")]
    return sim, nodes


def run_discovery_round(sim, initiator, **options) -> Discovered:
    initiator.station.discover(6, sim.now, **options)
    initiator.pump()
    sim.run(until=sim.now + 2.0, stop=lambda: any(isinstance(e, Discovered) for e in initiator.events))
    [event] = [e for e in initiator.events if isinstance(e, Discovered)]
    sim.run(until=sim.now + 0.1)  # the final XID goes out
    return event


def xid_slots(node) -> list[int]:
    return [frame.slot for _t, raw in node.sent_frames if isinstance(frame := F.parse(raw), F.XIDCommand)]


def test_discovery_ends_as_soon_as_the_wanted_device_answered():
    """``discover(stop_when=...)``: B answers in slot 1, and the final XID follows its answer at once instead
    of four more slots; C, which picked slot 4, never answers, sees the final XID, and is back in NDM with
    no timer left, as is B; the link to B comes up right after."""
    sim, (a, b, c) = three_stations(wanted_slot=1, other_slot=4)
    event = run_discovery_round(sim, a, stop_when=lambda device: device.nickname == "peer")
    assert [d.address for d in event.devices] == [B] and event.ended_early and not event.garbled
    assert xid_slots(a) == [0, 1, F.XID_FINAL_SLOT]
    [(answered_at, _raw)] = b.sent_frames
    final_at = a.sent_frames[-1][0]
    assert SLOT_TIMEOUT < answered_at < final_at < 2 * SLOT_TIMEOUT  # within B's slot, not at its end
    assert final_at - event.started < 2 * SLOT_TIMEOUT  # 6 slots would take 6 x 90 ms
    sim.run(until=sim.now + 1.0)
    assert c.sent_frames == []  # its slot never came
    for node in (b, c):
        assert node.station.state == State.NDM and node.station.next_deadline() is None
        assert [e.device.address for e in node.events if isinstance(e, DiscoveryIndication)] == [A]
    a.call("connect", B)
    sim.run(until=sim.now + 1.0, stop=lambda: any(isinstance(e, Connected) for e in a.events))
    assert any(isinstance(e, Connected) and e.peer == B for e in a.events)


def test_a_round_runs_every_slot_when_the_wanted_device_does_not_answer_or_answers_last():
    sim, (a, _b, _c) = three_stations(wanted_slot=1, other_slot=4)
    event = run_discovery_round(sim, a, stop_when=lambda device: device.nickname == "absent")
    assert {d.address for d in event.devices} == {B, C} and not event.ended_early
    assert xid_slots(a) == [0, 1, 2, 3, 4, 5, F.XID_FINAL_SLOT]
    sim, (a, _b, _c) = three_stations(wanted_slot=5, other_slot=2)
    event = run_discovery_round(sim, a, stop_when=lambda device: device.address == B)
    assert {d.address for d in event.devices} == {B, C} and not event.ended_early  # B's was the last slot
    assert xid_slots(a) == [0, 1, 2, 3, 4, 5, F.XID_FINAL_SLOT]
