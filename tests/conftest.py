"""Shared test helpers: external tools used as oracles skip locally but fail in CI; two interfaces on one
emulated medium (``medium``) and the same stream endpoints on AF_IRDA and AF_INET (``endpoints``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import irsock

# One run starts about ten pytest processes (xdist workers, the rig report's own run) and dozens of `irda`
# subprocesses. Where PYTHONDONTWRITEBYTECODE is set, each of them compiled the same sources again and pytest
# rewrote every test module again (collection 3.9 s of CPU instead of 1.3 s per process): the suite keeps its
# bytecode (in the git-ignored __pycache__ folders) whatever that variable says.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# Each test process finds only the daemons its tests start: a user's running `irda serve` (or one a test left behind)
# must never serve the tests' ports. $XDG_RUNTIME_DIR points at a fresh directory for this process and its children.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="irsock-run-")
os.environ.pop("IRSOCK_SOCKET", None)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skips the test when missing, fails instead under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if in_ci():
            pytest.fail(message + "; CI must install it (.ci/run)")
        pytest.skip(message)
    return path


@pytest.fixture
def tshark() -> str:
    return require_tool("tshark")


@pytest.fixture
def medium():
    name = f"sock-{uuid.uuid4().hex[:8]}"
    a = irsock.attach(f"irsim://{name}?pace=0", nickname="alpha")
    b = irsock.attach(f"irsim://{name}", nickname="beta")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def interfaces():
    """``attach(nickname, **kwargs)``: interfaces on one fresh unpaced medium, closed after the test."""
    name = f"ifaces-{uuid.uuid4().hex[:8]}"
    made = []

    def attach(nickname, **kwargs):
        iface = irsock.attach(f"irsim://{name}?pace=0", nickname=nickname, **kwargs)
        made.append(iface)
        return iface

    yield attach
    for iface in made:
        iface.close()


@pytest.fixture
def daemon_on(request):
    """``daemon_on(port, **options)``: a stack daemon (irsock.daemon.server) serving ``port`` from this process, on
    a short socket path of its own (Unix socket paths hold 107 bytes); stopped after the test."""
    from irsock.daemon.server import StackDaemon

    def start(port, **options):
        options.setdefault("path", Path(tempfile.mkdtemp(prefix="irsd-")) / "d.sock")
        daemon = StackDaemon(port, **options).start()
        request.addfinalizer(daemon.stop)
        return daemon

    return start


@pytest.fixture(params=["irda", "inet", "daemon"])
def endpoints(request, medium, daemon_on):
    """(make a client socket, a bound+listening server socket, the address a client connects to); ``daemon``:
    the client's sockets live in a stack daemon serving a third station on the medium (irda serve)."""
    a, b = medium
    if request.param in ("irda", "daemon"):
        server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        server.bind(("Echo",))
        server.listen()
        client = a
        if request.param == "daemon":
            daemon = daemon_on(a.port.split("?", 1)[0], nickname="gamma")
            client = irsock.attach(f"unix:{daemon.path}")
            request.addfinalizer(client.close)
        return (lambda: client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)), server, (b.address, "Echo")
    server = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    return (lambda: irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)), server, server.getsockname()


def wait_until(condition, what: str = "the condition", timeout: float = 20.0):
    """Poll ``condition`` until it holds (its value is returned) or fail after ``timeout`` seconds: tests wait
    for conditions, never for durations."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never became true within {timeout:g} s: {what}")
