"""Stations on the simulated medium: the targets of the link, faults, discovery, determinism."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irlap import frames as F
from irlap.sim import Faults, Simulator, run_discovery, run_link
from irlap.station import Data, Station, UIData
from irsock.cli import main


def test_one_megabyte_at_115200_meets_efficiency_target():
    report = run_link(1_000_000, baud=115200)
    assert report.intact and not report.link_lost
    assert report.efficiency >= 0.93
    assert report.retransmissions == 0 and report.resets == 0
    # the line capacity at 115200 / 500 ms allows two 2048-byte frames per turn
    assert (report.baud, report.data_size, report.window) == (115200, 2048, 2)


def test_bit_errors_cost_time_but_never_data():
    report = run_link(200_000, faults=Faults(ber=1e-5), seed=11)
    assert report.intact and report.retransmissions > 0 and report.resets == 0


def test_short_outage_resumes_and_completes():
    report = run_link(200_000, faults=Faults(outages=[(4.0, 8.0)]), seed=2)
    assert report.intact and not report.link_lost
    assert report.sim_seconds > 8.0


def test_long_outage_loses_the_link_promptly_and_reports_only_what_arrived():
    report = run_link(200_000, faults=Faults(outages=[(4.0, 60.0)]), seed=2)
    assert report.link_lost and not report.intact
    assert 0 < report.delivered_bytes < 200_000 and report.prefix_ok


def test_slow_line_small_frames_with_every_fault():
    report = run_link(20_000, baud=9600, data_size=64, window=1,
                      faults=Faults(ber=1e-4, drop=0.05, latency=0.002), seed=5)
    assert report.intact and report.baud == 9600 and report.window == 1


def test_same_seed_same_run():
    faults = Faults(ber=2e-5, drop=0.01)
    a = run_link(50_000, faults=faults, seed=9)
    b = run_link(50_000, faults=Faults(ber=2e-5, drop=0.01), seed=9)
    assert a.as_dict() == b.as_dict()
    c = run_link(50_000, faults=Faults(ber=2e-5, drop=0.01), seed=10)
    assert c.as_dict() != a.as_dict()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), ber=st.sampled_from([0, 1e-5, 1e-4, 3e-4]), drop=st.sampled_from([0, 0.02, 0.1]),
       baud=st.sampled_from([9600, 57600, 115200]), size=st.sampled_from([64, 256, 2048]))
def test_random_faults_never_lose_or_duplicate_and_never_hang(seed, ber, drop, baud, size):
    report = run_link(6000, baud=baud, data_size=size, faults=Faults(ber=ber, drop=drop), seed=seed)
    assert report.prefix_ok  # what was delivered is exactly the start of what was sent
    assert report.intact or report.link_lost


def test_eight_devices_six_slots_all_found():
    report = run_discovery(8, slots=6, seed=1)
    assert len(report.devices) == 8 and report.rounds <= 12
    per_round = sum(report.round_seconds) / report.rounds
    assert 6 * 0.09 <= per_round < 6 * 0.09 * 1.4


def test_sixteen_slots_need_fewer_rounds():
    rounds6 = sum(run_discovery(8, slots=6, seed=s).rounds for s in range(5))
    rounds16 = sum(run_discovery(8, slots=16, seed=s).rounds for s in range(5))
    assert rounds16 < rounds6


def test_single_device_found_in_one_round_of_one_slot():
    report = run_discovery(1, slots=1, seed=0)
    assert report.rounds == 1 and len(report.devices) == 1 and report.collisions == 0


def test_collisions_corrupt_both_transmissions():
    sim = Simulator(seed=1)
    a = sim.add(Station(0xA, rng=random.Random(1)), "a")
    b = sim.add(Station(0xB, rng=random.Random(2)), "b")
    c = sim.add(Station(0xC, rng=random.Random(3)), "c")
    a.call("send_ui", b"from a")
    b.call("send_ui", b"from b")
    sim.run(until=1.0)
    assert sim.collisions >= 1
    assert not [e for e in c.events if isinstance(e, UIData)]
    assert c.unwrapper.stats.good == 0


def test_half_duplex_and_clean_reception():
    sim = Simulator(seed=1)
    a = sim.add(Station(0xA, rng=random.Random(1)), "a")
    b = sim.add(Station(0xB, rng=random.Random(2)), "b")
    a.call("send_ui", b"hello")
    sim.run(until=1.0)
    assert [e.data for e in b.events if isinstance(e, UIData)] == [b"hello"]
    assert a.unwrapper.stats.good == 0  # a sender does not hear itself


def test_baud_mismatch_gives_garbage():
    sim = Simulator(seed=4)
    a = sim.add(Station(0xA, rng=random.Random(1)), "a")
    b = sim.add(Station(0xB, rng=random.Random(2)), "b")
    b.baud = 115200  # b's UART is at the wrong speed
    a.call("send_ui", b"hello")
    sim.run(until=1.0)
    assert not [e for e in b.events if isinstance(e, UIData)]


def test_speed_change_happens_after_the_ua_has_left():
    sim = Simulator(seed=0)
    info = F.DiscoveryInfo.make("x")
    p = sim.add(Station(0x1, rng=random.Random(1), info=info), "p")
    s = sim.add(Station(0x2, rng=random.Random(2), info=info), "s")
    p.call("connect", 0x2)
    sim.run(until=2.0)
    assert p.baud == s.baud == 115200
    assert p.station.connected and s.station.connected
    p.call("send", b"data")
    sim.run(until=3.0)
    assert [e.data for e in s.events if isinstance(e, Data)] == [b"data"]


def test_cli_sim_link_json_keys(capsys):
    assert main(["sim", "link", "--bytes", "50000", "--ber", "1e-5", "--outage", "1:2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("delivered_bytes", "intact", "sim_seconds", "goodput_Bps", "line_rate_Bps", "efficiency",
                "retransmissions", "resets", "link_lost"):
        assert key in data
    assert data["intact"] and data["line_rate_Bps"] == 11520


def test_cli_sim_discover(capsys):
    assert main(["sim", "discover", "--devices", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["devices"]) == 3 and data["rounds"] >= 1 and data["sim_seconds"] > 0
    assert main(["sim", "discover", "--devices", "2"]) == 0
    assert "2 of 2 devices found" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--baud", "1234"], "IrDA speeds"),
    (["--baud", "16000000"], "IrDA speeds"),
    (["--data-size", "100"], "data sizes"),
    (["--window", "9"], "window"),
    (["--min-turn", "7"], "valid values"),
])
def test_cli_sim_link_bad_arguments(capsys, args, words):
    assert main(["sim", "link", "--bytes", "10", *args]) == 1
    assert words in capsys.readouterr().err
