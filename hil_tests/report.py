"""The rig report: what a ``hil_tests`` run measured, as JSON to keep and as one HTML page to read.

``pytest hil_tests --rig-report DIR`` calls :func:`write_report` at the end of the session (see conftest.py).
The HTML is a single self-contained file (inline CSS and SVG, no scripts, nothing fetched) so it can be
mailed, attached to a CI run or opened on a bench machine without network. Several runs (two dongles, two
builds) go side by side with the CLI::

    python -m hil_tests.report old/rig-report.json new/rig-report.json -o compare/

The format is described in docs/rig-report.md.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = "irsock-rig-report/1"
JSON_NAME = "rig-report.json"
HTML_NAME = "rig-report.html"
OUTCOMES = ("passed", "failed", "skipped")
# the order of hil_tests/test_rig.py; scenarios not listed follow in order of appearance
SCENARIO_ORDER = ("discovery", "ias", "echo", "speed", "transfer", "ping", "link_recovery", "link_lost", "ber",
                  "dongle_mismatch", "unplug", "rfc2217")
# Okabe-Ito: tells runs apart for colour-blind readers too; marker shapes differ as well
COLORS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999933")


@dataclass
class RigRecord:
    """One measurement of a scenario (or the outcome of a test that measured nothing): a row of its table."""

    scenario: str
    test: str
    outcome: str  # "passed", "failed" or "skipped"
    duration_s: float
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass
class RigRun:
    """One pytest session on one rig; several runs side by side make a comparison."""

    label: str
    rig: dict[str, Any]
    records: list[RigRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Tests per outcome: a test that recorded several measurements counts once."""
        rank = {"failed": 0, "passed": 1, "skipped": 2}
        per_test: dict[str, str] = {}
        for record in self.records:
            seen = per_test.get(record.test)
            if seen is None or rank.get(record.outcome, 3) < rank.get(seen, 3):
                per_test[record.test] = record.outcome
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in per_test.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts


# --- JSON -----------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null (strict JSON has neither), unknown objects their str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    return str(value)


def report_dict(runs: Sequence[RigRun], generated: str | None = None) -> dict[str, Any]:
    """The JSON document for ``runs`` (the first is the main run)."""
    return {"schema": SCHEMA, "generated": generated or _now(),
            "runs": [_jsonable({"label": run.label, "rig": run.rig, "records": [asdict(r) for r in run.records]})
                     for run in runs]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def runs_from_dict(data: Any, source: str = "report") -> list[RigRun]:
    """The runs of a parsed rig-report.json; ValueError, naming ``source``, if it is not one."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not an irsock rig report (a JSON {type(data).__name__}, expected an object)")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ValueError(f"{source}: not an irsock rig report: schema is {schema!r}, expected {SCHEMA!r}")
    raw_runs = data.get("runs")
    if not isinstance(raw_runs, list) or not raw_runs:
        raise ValueError(f"{source}: 'runs' must be a non-empty list")
    runs = []
    for index, raw in enumerate(raw_runs):
        where = f"{source}: runs[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("records"), list):
            raise ValueError(f"{where}: expected an object with 'label', 'rig' and a list of 'records'")
        rig = raw.get("rig") or {}
        if not isinstance(rig, dict):
            raise ValueError(f"{where}: 'rig' must be an object")
        records = [_record_from_dict(item, f"{where}.records[{n}]") for n, item in enumerate(raw["records"])]
        runs.append(RigRun(label=str(raw.get("label") or f"run {index + 1}"), rig=rig, records=records))
    return runs


def _record_from_dict(item: Any, where: str) -> RigRecord:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    missing = [name for name in ("scenario", "test", "outcome") if not isinstance(item.get(name), str)]
    if missing:
        raise ValueError(f"{where}: missing or not text: {', '.join(missing)}")
    params, metrics = item.get("params") or {}, item.get("metrics") or {}
    if not isinstance(params, dict) or not isinstance(metrics, dict):
        raise ValueError(f"{where}: 'params' and 'metrics' must be objects")
    duration = item.get("duration_s")
    if isinstance(duration, bool) or not isinstance(duration, int | float | None):
        raise ValueError(f"{where}: 'duration_s' must be a number")
    return RigRecord(scenario=item["scenario"], test=item["test"], outcome=item["outcome"],
                     duration_s=math.nan if duration is None else float(duration), params=params, metrics=metrics,
                     message=str(item.get("message") or ""))


def load_run(path: Path | str) -> list[RigRun]:
    """Every run in a rig-report.json (or a directory holding one), the main run first.

    Raises OSError if the file cannot be read and ValueError if it is not an irsock rig report.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return runs_from_dict(data, str(path))


# --- formatting -----------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Escaped for HTML text and attribute values (labels, messages and params may hold anything)."""
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A value as a reader wants it: 11234 not 11234.0123, 1e-06, — for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_fmt(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(item) for item in value)
    return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _display_labels(runs: Sequence[RigRun]) -> list[str]:
    """Run labels made unique (two runs on the emulator get the same default label)."""
    labels: list[str] = []
    for run in runs:
        label, n = run.label, 2
        while label in labels:
            label, n = f"{run.label} ({n})", n + 1
        labels.append(label)
    return labels


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- plots ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlotSpec:
    """A metric of one scenario against one of its params, categorical x so that speeds and BER 0 both fit."""

    title: str
    scenario: str
    x_param: str
    metric: str
    x_label: str
    y_label: str
    numeric_x: bool = True  # categories sorted by value, else in order of appearance
    lines: bool = True  # join a run's points (not for unordered categories such as directions)
    #: a logarithmic y axis, for a metric that spans decades: goodput runs from ~900 bytes/s at 9600 bit/s to
    #: ~450 kB/s at 4 Mbit/s, and on a linear axis every SIR speed sat on the bottom line
    log_y: bool = False


PLOTS = (
    PlotSpec("Goodput against link speed", "speed", "baud", "goodput_Bps", "link speed (bit/s)",
             "goodput (bytes/s, log scale)", log_y=True),
    PlotSpec("Goodput against bit error rate", "ber", "ber", "goodput_Bps", "bit error rate on the beam",
             "goodput (bytes/s)"),
    PlotSpec("Discovery time", "discovery", "direction", "discovery_s", "direction (seeker->target)",
             "time to first answer (s)", numeric_x=False, lines=False),
)


def plot_points(run: RigRun, spec: PlotSpec) -> list[tuple[Any, float]]:
    """(x param, metric) of every record of the scenario that has both and a finite number as the metric."""
    points = []
    for record in run.records:
        if record.scenario != spec.scenario or spec.x_param not in record.params:
            continue
        y = record.metrics.get(spec.metric)
        if _is_number(y):
            points.append((record.params[spec.x_param], float(y)))
    return points


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """0, step, ... up to at least ``top`` with a 1/2/2.5/5 x 10^n step."""
    if not top > 0:
        top = 1.0
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(steps + 1)]


def _decade_ticks(low: float, high: float) -> list[float]:
    """Powers of ten from below ``low`` to at least ``high`` (both > 0), two decades at least."""
    first = math.floor(math.log10(low))
    last = max(first + 2, math.ceil(math.log10(high) - 1e-9))
    return [10.0 ** k for k in range(first, last + 1)]


def _marker(shape: int, x: float, y: float, color: str, tooltip: str) -> str:
    title = f"<title>{_e(tooltip)}</title>"
    common = f'class="point" fill="{color}" stroke="#fff" stroke-width="0.8"'
    if shape == 0:
        return f'<circle {common} cx="{x:.1f}" cy="{y:.1f}" r="4.5">{title}</circle>'
    if shape == 1:
        return f'<rect {common} x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8">{title}</rect>'
    if shape == 2:
        corners = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}"
    else:
        corners = f"{x:.1f},{y - 5.5:.1f} {x + 5.5:.1f},{y:.1f} {x:.1f},{y + 5.5:.1f} {x - 5.5:.1f},{y:.1f}"
    return f'<polygon {common} points="{corners}">{title}</polygon>'


def plot_svg(spec: PlotSpec, runs: Sequence[RigRun], labels: Sequence[str] | None = None) -> str:
    """An inline SVG: one series per run, categorical x, y from 0, a legend that says which runs have no data."""
    labels = list(labels or _display_labels(runs))
    series = [plot_points(run, spec) for run in runs]
    categories: dict[str, tuple] = {}  # label -> sort key
    for points in series:
        for x, _y in points:
            name = _fmt(x)
            if name not in categories:
                numeric = spec.numeric_x and _is_number(x)
                categories[name] = (0, float(x), 0) if numeric else (1, 0.0, len(categories))
    order = sorted(categories, key=categories.__getitem__)
    column = {name: i for i, name in enumerate(order)}

    width, left, right, top, plot_h, axis_h, row_h = 640, 74, 16, 34, 220, 54, 18
    plot_w = width - left - right
    height = top + plot_h + axis_h + row_h * max(1, len(runs)) + 6
    ys = [y for points in series for _x, y in points]
    positive = [y for y in ys if y > 0]
    if spec.log_y and positive:
        ticks = _decade_ticks(min(positive), max(positive))
        low, high = math.log10(ticks[0]), math.log10(ticks[-1])

        def y_at(value: float) -> float:  # a value <= 0 has no place on a log axis: it sits on the bottom line
            share = (math.log10(value) - low) / (high - low) if value > 0 else 0.0
            return top + plot_h - share * plot_h
    else:
        ticks = _nice_ticks(max(ys, default=0.0))
        y_top = ticks[-1]

        def y_at(value: float) -> float:
            return top + plot_h - max(0.0, value) / y_top * plot_h

    band = plot_w / max(1, len(order))
    dodge = min(9.0, band / (len(runs) + 1))
    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{_e(spec.title)}" data-scenario="{_e(spec.scenario)}">',
           f"<title>{_e(spec.title)}</title>",
           f'<text class="plot-title" x="{width / 2:.0f}" y="20" text-anchor="middle">{_e(spec.title)}</text>']
    for tick in ticks:
        y = y_at(tick)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(_fmt(tick))}</text>')
    bottom = top + plot_h
    out.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}"/>')
    out.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>')
    for name in order:
        x = left + band * (column[name] + 0.5)
        out.append(f'<line class="axis" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{_e(_clip(name, 16))}'
                   "</text>")
    out.append(f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{bottom + 40}" text-anchor="middle">'
               f"{_e(spec.x_label)}</text>")
    out.append(f'<text class="axis-label" transform="translate(16 {top + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{_e(spec.y_label)}</text>')
    if not ys:
        out.append(f'<text class="nodata" x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" '
                   f'text-anchor="middle">no data</text>')

    for index, (points, label) in enumerate(zip(series, labels, strict=True)):
        color, shape = COLORS[index % len(COLORS)], index % 4
        offset = (index - (len(runs) - 1) / 2) * dodge

        def x_of(value: Any, offset: float = offset) -> float:
            return left + band * (column[_fmt(value)] + 0.5) + offset

        out.append(f'<g class="series" data-series="{index}" data-label="{_e(label)}">')
        if spec.lines and points:
            by_column: dict[int, list[float]] = {}
            for x, y in points:
                by_column.setdefault(column[_fmt(x)], []).append(y)
            if len(by_column) > 1:
                path = " ".join(f"{left + band * (c + 0.5) + offset:.1f},{y_at(sum(v) / len(v)):.1f}"
                                for c, v in sorted(by_column.items()))
                out.append(f'<polyline class="line" fill="none" stroke="{color}" stroke-width="1.8" '
                           f'points="{path}"/>')
        for x, y in points:
            out.append(_marker(shape, x_of(x), y_at(y), color,
                               f"{label}: {spec.x_param}={_fmt(x)}, {spec.metric}={_fmt(y)}"))
        out.append("</g>")

    legend_top = bottom + axis_h
    for index, (points, label) in enumerate(zip(series, labels, strict=True)):
        y = legend_top + row_h * index + 10
        note = "" if points else " — no data"
        out.append(f'<g class="legend" data-series="{index}">'
                   + _marker(index % 4, left + 6, y - 4, COLORS[index % len(COLORS)], label)
                   + f'<text x="{left + 18}" y="{y:.0f}">{_e(_clip(label, 80))}{_e(note)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


# --- HTML -----------------------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; } th, td { border: 1px solid #ddd; padding: 3px 8px;
  text-align: left; vertical-align: top; } th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.passed { color: #0a7a2f; font-weight: 600; } .failed { color: #c0141c; font-weight: 600; }
.skipped { color: #8a6d00; } .other { color: #555; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px; }
.message { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; max-width: 48em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
svg.plot { border: 1px solid #ddd; background: #fff; font-size: 12px; }
svg .grid { stroke: #eee; } svg .axis { stroke: #444; } svg .plot-title { font-weight: 600; font-size: 14px; }
svg .nodata { fill: #999; font-size: 18px; } svg .tick { fill: #444; }
details summary { cursor: pointer; color: #555; } .muted { color: #777; }
"""


def _outcome_cell(outcome: str) -> str:
    css = outcome if outcome in OUTCOMES else "other"
    return f'<td class="{css}">{_e(outcome)}</td>'


def _kv_html(values: dict[str, Any]) -> str:
    """key=value lines; nested objects (the QoS of each side) folded away."""
    lines, folded = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            folded.append(f"<details><summary>{_e(key)}</summary>"
                          + "<br>".join(f"{_e(k)}={_e(_fmt(v))}" for k, v in value.items()) + "</details>")
        else:
            lines.append(f"{_e(key)}={_e(_fmt(value))}")
    return "<br>".join(lines) + "".join(folded)


def _swatch(index: int) -> str:
    return f'<span class="swatch" style="background:{COLORS[index % len(COLORS)]}"></span>'


def _rig_summary(rig: dict[str, Any]) -> str:
    sides = []
    for side in ("a", "b"):
        value = rig.get(side)
        if isinstance(value, dict):
            sides.append(f"{side.upper()}: {value.get('dongle', '?')} on {value.get('port', '?')}")
    return "; ".join([str(rig.get("kind", "?")), *sides])


def _scenario_order(runs: Sequence[RigRun]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for record in run.records:
            if record.scenario not in seen:
                seen.append(record.scenario)
    known = [name for name in SCENARIO_ORDER if name in seen]
    return known + [name for name in seen if name not in SCENARIO_ORDER]


def render_html(runs: Sequence[RigRun], generated: str | None = None) -> str:
    """The whole report page: summary per run, the plots, then a table per scenario."""
    labels = _display_labels(runs)
    generated = generated or _now()
    several = len(runs) > 1
    title = f"irsock rig report: {labels[0]}" + (f" and {len(runs) - 1} more" if several else "")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           # nothing may be fetched or run, whatever a label or message holds
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(_clip(title, 200))}</title>", f"<style>{_CSS}</style>", "</head><body>",
           f"<h1>{_e(title)}</h1>",
           f'<p class="muted">Generated {_e(generated)} · schema {_e(SCHEMA)} · '
           + ("the first run is the main run; the others are compared with it" if several else "one run") + "</p>"]

    out += ["<h2>Summary</h2>", "<table><tr><th>#</th><th>run</th><th>rig</th><th>irsock</th><th>started</th>"
            + "".join(f'<th class="{o}">{o}</th>' for o in OUTCOMES) + "<th>measurements</th></tr>"]
    for index, (run, label) in enumerate(zip(runs, labels, strict=True)):
        counts = run.counts()
        extra = {k: v for k, v in counts.items() if k not in OUTCOMES}
        out.append(f"<tr><td>{_swatch(index)}{index + 1}</td><td>{_e(label)}</td>"
                   f"<td>{_e(_rig_summary(run.rig))}<details><summary>rig</summary>{_kv_html(run.rig)}</details></td>"
                   f"<td>{_e(run.rig.get('irsock_version', '?'))}</td><td>{_e(run.rig.get('started', '?'))}</td>"
                   + "".join(f'<td class="num">{counts[o]}</td>' for o in OUTCOMES)
                   + f'<td class="num">{len(run.records)}'
                   + (f" <span class=\"other\">({_e(_fmt(extra))})</span>" if extra else "") + "</td></tr>")
    out.append("</table>")

    out += ["<h2>Plots</h2>", '<div class="plots">']
    out += [plot_svg(spec, runs, labels) for spec in PLOTS]
    out.append("</div>")

    scenarios = _scenario_order(runs)
    out += ["<h2>Scenarios</h2>", "<p>" + " · ".join(f'<a href="#scenario-{n}">{_e(name)}</a>'
                                                    for n, name in enumerate(scenarios)) + "</p>"]
    for n, name in enumerate(scenarios):
        out.append(f'<h3 id="scenario-{n}">{_e(name)}</h3>')
        out.append("<table><tr>" + ('<th title="the run\'s number in the summary">#</th>' if several else "")
                   + "<th>test</th><th>params</th><th>outcome</th><th>metrics</th><th>duration (s)</th>"
                   "<th>message</th></tr>")
        for index, (run, label) in enumerate(zip(runs, labels, strict=True)):
            for record in run.records:
                if record.scenario != name:
                    continue
                test = record.test.rpartition("::")[2] or record.test
                out.append("<tr>" + (f'<td title="{_e(label)}">{_swatch(index)}{index + 1}</td>' if several else "")
                           + f'<td title="{_e(record.test)}">{_e(test)}</td><td>{_kv_html(record.params)}</td>'
                           + _outcome_cell(record.outcome) + f"<td>{_kv_html(record.metrics)}</td>"
                           + f'<td class="num">{_e(_fmt(record.duration_s))}</td>'
                           + f'<td class="message">{_e(record.message)}</td></tr>')
        out.append("</table>")
    if not scenarios:
        out.append("<p>no data: no scenario ran</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run: RigRun, out_dir: Path, compare: Sequence[RigRun] = ()) -> tuple[Path, Path]:
    """Write rig-report.json and rig-report.html for ``run`` (and ``compare``, side by side) into ``out_dir``.

    The page is rendered from the JSON document itself, so both always show the same figures (NaN as null).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_dict([run, *compare])
    json_path, html_path = out_dir / JSON_NAME, out_dir / HTML_NAME
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    html_path.write_text(render_html(runs_from_dict(data, str(json_path)), data["generated"]), encoding="utf-8",
                         errors="replace")
    return json_path, html_path


# --- CLI ------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hil_tests.report RUN.json [MORE.json ...] -o DIR``: one report comparing all runs."""
    parser = argparse.ArgumentParser(prog="python -m hil_tests.report",
                                     description="Merge rig reports into one comparison report; the first "
                                                 "file's run is the main run.")
    parser.add_argument("reports", nargs="+", type=Path, metavar="RUN.json",
                        help="a rig-report.json (or the directory holding one)")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="where to write the report")
    args = parser.parse_args(argv)
    runs: list[RigRun] = []
    for path in args.reports:
        try:
            runs.extend(load_run(path))
        except OSError as exc:
            print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        json_path, html_path = write_report(runs[0], args.out, runs[1:])
    except OSError as exc:
        print(f"error: cannot write the report to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"rig report: {json_path} and {html_path} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
