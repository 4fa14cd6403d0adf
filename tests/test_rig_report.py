"""The rig report (hil_tests/report.py): JSON round trip, a safe self-contained page, plots per run, the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil_tests.report import (
    PLOTS,
    SCHEMA,
    RigRecord,
    RigRun,
    load_run,
    main,
    plot_svg,
    render_html,
    write_report,
)

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("x")</script>'
SPEEDS = (9600, 19200, 38400, 57600, 115200)
BERS = (0.0, 1e-6, 1e-5, 1e-4)


def make_run(label: str = "emulator: plain /dev/pts/3 <-> tekram irsim://rig", scale: float = 1.0,
             scenarios: tuple[str, ...] = ("discovery", "speed", "ber")) -> RigRun:
    qos = {"baud": 115200, "tx_window": 2}
    records = []
    if "discovery" in scenarios:
        records += [RigRecord("discovery", "hil_tests/test_rig.py::test_discovery_both_ways", "passed", 3.5,
                              {"direction": d}, {"discovery_s": s * scale}, "")
                    for d, s in (("a->b", 0.54), ("b->a", 1.08))]
    if "speed" in scenarios:
        records += [RigRecord("speed", f"hil_tests/test_rig.py::test_connection_at_each_speed[{b}]", "passed", 4.2,
                              {"baud": b, "bytes": b // 5},
                              {"goodput_Bps": b / 13 * scale, "efficiency": 0.8, "seconds": 2.1, "intact": True,
                               "qos_a": {**qos, "baud": b}, "qos_b": {**qos, "baud": b}}, "")
                    for b in SPEEDS]
    if "ber" in scenarios:
        records += [RigRecord("ber", f"hil_tests/test_rig.py::test_bit_error_sweep[{ber}]", "passed", 6.0,
                              {"ber": ber, "bytes": 40_000}, {"goodput_Bps": 10_000 * (1 - ber * 5000) * scale,
                                                              "qos_a": qos, "qos_b": None}, "")
                    for ber in BERS]
    records += [RigRecord("unplug", "hil_tests/test_rig.py::test_unplug_mid_transfer", "failed", 1.2, {}, {},
                          "AssertionError: assert None is not None"),
                RigRecord("rfc2217", "hil_tests/test_rig.py::test_remote_dongle_through_ser2net", "skipped", 0.0, {},
                          {}, "ser2net is not installed (apt-get install ser2net)")]
    rig = {"kind": "emulator", "a": {"port": "/dev/pts/3", "dongle": "plain"},
           "b": {"port": "irsim://rig", "dongle": "tekram"}, "irsock_version": "0.1.0",
           "started": "2026-01-01T00:00:00+00:00"}
    return RigRun(label=label, rig=rig, records=records)


def svgs(page: str) -> list[ET.Element]:
    """Each inline SVG of a page, parsed (they are well-formed XML on their own)."""
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg\b.*?</svg>", page, re.S)]


def plot_of(page: str, scenario: str) -> ET.Element:
    return next(svg for svg in svgs(page) if svg.get("data-scenario") == scenario)


def series_points(svg: ET.Element) -> dict[str, int]:
    """Series label -> number of data points drawn for it."""
    return {g.get("data-label"): sum(1 for el in g if el.get("class") == "point")
            for g in svg.iter("g") if g.get("class") == "series"}


def svg_text(svg: ET.Element) -> str:
    return " ".join("".join(el.itertext()) for el in svg.iter("text"))


# --- JSON ---------------------------------------------------------------------------------------------------------
def test_json_round_trip_keeps_every_run_and_record(tmp_path: Path) -> None:
    main_run, other = make_run(), make_run("hardware: tekram <-> actisys", scale=0.5)
    json_path, html_path = write_report(main_run, tmp_path / "out", [other])
    assert (json_path.name, html_path.name) == ("rig-report.json", "rig-report.html")
    data = json.loads(json_path.read_text())
    assert data["schema"] == SCHEMA and [r["label"] for r in data["runs"]] == [main_run.label, other.label]
    assert load_run(json_path) == [main_run, other]
    assert load_run(tmp_path / "out") == [main_run, other]  # the directory holding it will do


def test_non_finite_metrics_are_written_as_null(tmp_path: Path) -> None:
    run = RigRun("nan run", {"kind": "emulator"}, [
        RigRecord("speed", "t::speed", "passed", math.nan, {"baud": 9600},
                  {"goodput_Bps": math.nan, "efficiency": math.inf, "qos_a": {"x": -math.inf}, "ok": 1.5}, ""),
        RigRecord("speed", "t::speed2", "passed", 1.0, {"baud": 19200}, {"goodput_Bps": 2000.0}, "")])
    json_path, html_path = write_report(run, tmp_path)

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(json_path.read_text(), parse_constant=refuse)
    record = data["runs"][0]["records"][0]
    assert record["duration_s"] is None
    assert record["metrics"] == {"goodput_Bps": None, "efficiency": None, "qos_a": {"x": None}, "ok": 1.5}
    assert load_run(json_path)[0].records[0].metrics["goodput_Bps"] is None
    assert series_points(plot_of(html_path.read_text(), "speed")) == {"nan run": 1}  # only the finite point


def test_load_run_rejects_other_schemas(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something-else/2", "runs": []}))
    with pytest.raises(ValueError, match="schema is 'something-else/2', expected 'irsock-rig-report/1'"):
        load_run(other)
    other.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an irsock rig report"):
        load_run(other)
    other.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_run(other)
    other.write_text(json.dumps({"schema": SCHEMA, "runs": [{"label": "x", "rig": {}, "records": [{"test": 1}]}]}))
    with pytest.raises(ValueError, match=r"runs\[0\]\.records\[0\]"):
        load_run(other)


def test_counts_tests_not_measurements() -> None:
    counts = make_run().counts()  # discovery records twice, speed five tests, ber four
    assert counts == {"passed": 1 + 5 + 4, "failed": 1, "skipped": 1}


# --- the page -----------------------------------------------------------------------------------------------------
def test_html_is_self_contained(tmp_path: Path) -> None:
    _json, html_path = write_report(make_run(), tmp_path, [make_run("second")])
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and len(svgs(page)) == len(PLOTS)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    for fetches in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert fetches not in page.lower()
    assert "Content-Security-Policy" in page


def test_hostile_text_is_escaped_everywhere() -> None:
    run = make_run(label=HOSTILE)
    run.rig["kind"] = HOSTILE
    run.records.append(RigRecord(HOSTILE, "t::<b>", "<i>odd</i>", 0.1, {HOSTILE: HOSTILE}, {"error": HOSTILE},
                                 "</td></tr></table><img src=x onerror=alert(1)>" + HOSTILE))
    page = render_html([run, make_run(HOSTILE)])
    assert "<script" not in page and "<img" not in page and "<i>odd" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    for svg in svgs(page):  # still well-formed, and the legend names the runs as given
        assert HOSTILE in svg_text(svg)


def test_plots_show_the_points_of_each_run() -> None:
    page = render_html([make_run("A")])
    assert series_points(plot_of(page, "speed")) == {"A": len(SPEEDS)}
    assert series_points(plot_of(page, "ber")) == {"A": len(BERS)}
    assert series_points(plot_of(page, "discovery")) == {"A": 2}
    ber = svg_text(plot_of(page, "ber"))
    assert all(label in ber for label in ("0", "1e-06", "1e-05", "0.0001"))  # BER 0 has its own category
    assert "no data" not in ber
    speed = svg_text(plot_of(page, "speed"))
    assert all(str(baud) in speed for baud in SPEEDS) and "link speed" in speed and "goodput" in speed


def test_goodput_against_speed_is_on_a_log_axis_so_sir_speeds_do_not_sit_on_the_bottom_line() -> None:
    run = make_run("A", scenarios=())
    for baud, goodput in ((9600, 884.0), (115200, 11_200.0), (4_000_000, 445_000.0)):
        run.records.append(RigRecord("speed", f"t[{baud}]", "passed", 1.0, {"baud": baud},
                                     {"goodput_Bps": goodput}, ""))
    svg = plot_of(render_html([run]), "speed")
    heights = [float(el.get("cy")) for el in svg.iter("{http://www.w3.org/2000/svg}circle")] or \
        [float(el.get("cy")) for el in svg.iter("circle")]
    bottom = max(float(el.get("y1")) for el in svg.iter() if el.get("class") == "axis")
    top = min(float(el.get("y1")) for el in svg.iter() if el.get("class") == "grid")
    slowest = (bottom - heights[0]) / (bottom - top)
    assert slowest > 0.2, slowest  # linear: 884 / 500000 of the height, drawn on the axis
    assert heights[0] > heights[1] > heights[2]
    assert all(label in svg_text(svg) for label in ("100", "1000", "10000", "100000", "1000000"))


def test_comparison_draws_one_series_per_run() -> None:
    page = render_html([make_run("dongle one"), make_run("dongle two", scale=0.7)])
    for spec in PLOTS:
        drawn = series_points(plot_of(page, spec.scenario))
        assert list(drawn) == ["dongle one", "dongle two"], spec.scenario
        assert drawn["dongle one"] == drawn["dongle two"] > 0


def test_a_run_without_data_says_so() -> None:
    page = render_html([make_run("full"), make_run("no ber", scenarios=("discovery", "speed"))])
    ber = plot_of(page, "ber")
    assert series_points(ber) == {"full": len(BERS), "no ber": 0}
    assert "no ber — no data" in svg_text(ber)
    empty = plot_svg(PLOTS[0], [make_run("nothing", scenarios=())])
    assert "no data" in svg_text(ET.fromstring(empty)) and 'class="nodata"' in empty


def test_same_labels_are_told_apart() -> None:
    page = render_html([make_run("emulator"), make_run("emulator")])
    assert list(series_points(plot_of(page, "speed"))) == ["emulator", "emulator (2)"]


# --- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_merges_runs_first_is_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = write_report(make_run("build 1"), tmp_path / "one")
    second, _ = write_report(make_run("build 2", scale=1.1), tmp_path / "two", [make_run("build 3")])
    assert main([str(first), str(second), "-o", str(tmp_path / "cmp")]) == 0
    assert "3 runs" in capsys.readouterr().out
    assert [run.label for run in load_run(tmp_path / "cmp" / "rig-report.json")] == ["build 1", "build 2", "build 3"]
    page = (tmp_path / "cmp" / "rig-report.html").read_text()
    assert list(series_points(plot_of(page, "speed"))) == ["build 1", "build 2", "build 3"]


def test_cli_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    result = subprocess.run([sys.executable, "-m", "hil_tests.report", str(missing), "-o", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(missing) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_wrong_schema_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, _ = write_report(make_run(), tmp_path / "good")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "irsock-bench/1", "runs": []}))
    assert main([str(good), str(wrong), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wrong.json" in err and "schema" in err
    assert not (tmp_path / "out").exists()


# --- the real suite -----------------------------------------------------------------------------------------------
def test_rig_report_from_the_emulator_rig(tmp_path: Path) -> None:
    """pytest hil_tests --rig-report DIR end to end (the emulator rig, ~10 s), with the scenarios in two xdist
    workers: the rows reach the controller, which writes the report."""
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", "-q", "-k", "discovery or ping",
                             "-p", "no:cacheprovider", "-n", "2", "--rig-report", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (out / "rig-report.html").is_file() and (out / "rig-report.json").is_file()
    [run] = load_run(out / "rig-report.json")
    by_scenario = {r.scenario: r for r in run.records}
    assert set(by_scenario) == {"discovery", "ping"}
    assert all(r.outcome == "passed" for r in run.records)
    assert {r.params["direction"] for r in run.records if r.scenario == "discovery"} == {"a->b", "b->a"}
    assert by_scenario["ping"].metrics["rtt_ms"] > 0 and run.rig["kind"] == "emulator"
    assert series_points(plot_of((out / "rig-report.html").read_text(), "discovery")) == {run.label: 2}
