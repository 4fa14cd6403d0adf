"""Benchmark: the four speed figures of docs/performance.md in one run; one JSON object.

    python3 benchmarks/speed.py [--quick]

- ``first_byte_s``: wall time of ``irda send`` of a 2-byte file from one PTY of ``irda emulate --pty 2`` to
  ``irda receive`` on the other (the whole command: Python start-up, discovery, link, IAS, OBEX), median and
  all of five runs; ``first_byte_named_s`` the same with ``--to NICKNAME``, whose discovery round ends once
  the receiver answered (it varies with the slot the receiver picks at random: 0.09 s a slot);
- ``efficiency_9600``: an OBEX push between two stacks held at 9600 bit/s (``irda bench --max-baud 9600``);
- ``stream_mb_per_s``: a TinyTP stream on ``irsim://M?pace=0`` (no line time: the stack's own speed), with
  ``stream_cpu_share`` (both stacks and the emulator in this process, as a fraction of one core);
- ``cpu_115200``: the sending stack's CPU (its engine and reader threads and the feeding application thread)
  as a fraction of one core while it pushes at 115200 bit/s, with that push's efficiency.

``--quick`` pushes less (the figures are then rougher).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream import stream  # noqa: E402 - the sibling benchmark

from irsock.apps.bench import bench_link, emulator_ports  # noqa: E402

IRDA = [sys.executable, "-m", "irsock.cli"]
#: the commands keep their bytecode, as an installed irsock does: where PYTHONDONTWRITEBYTECODE is set, a changed
#: module would otherwise be compiled again in every run (all of them: +0.1 s)
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def _wall_time(command: list[str], timeout: float = 60.0) -> float:
    """Seconds ``command`` takes, to its exit. A blocking wait: ``subprocess.run(timeout=...)`` polls the child
    with sleeps of up to 50 ms, which added 0-50 ms to every figure."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        status = process.wait()
    finally:
        killer.cancel()
    if status:
        raise subprocess.CalledProcessError(status, command)
    return round(time.monotonic() - started, 3)


def first_byte(runs: int = 5, named: bool = False) -> list[float]:
    """Wall times of ``irda send`` of 2 bytes between two processes on the two PTYs of one emulator (``named``:
    with ``--to`` the receiver's nickname)."""
    times = []
    emulate = subprocess.Popen([*IRDA, "emulate", "--pty", "2", "--devices", "0", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=ENV)
    receiver = None
    try:
        ports = json.loads(emulate.stdout.readline())["ports"]
        with tempfile.TemporaryDirectory(prefix="irsock-speed-") as work:
            inbox = Path(work) / "inbox"
            inbox.mkdir()
            payload = Path(work) / "two.txt"
            payload.write_bytes(b"hi")
            receiver = subprocess.Popen([*IRDA, "receive", "--port", ports[0], "--dir", str(inbox),
                                         "--nickname", "inbox"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
            receiver.stderr.readline()  # the inbox is up
            to = ["--to", "inbox"] if named else []
            for _ in range(runs):
                times.append(_wall_time([*IRDA, "send", "--port", ports[1], *to, str(payload)]))
    finally:
        for process in (receiver, emulate):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="push less: a rougher figure in less time")
    args = parser.parse_args()
    report: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    times = first_byte()
    report.update(first_byte_s=statistics.median(times), first_byte_runs=times)
    times = first_byte(named=True)
    report.update(first_byte_named_s=statistics.median(times), first_byte_named_runs=times)
    slow = bench_link(*emulator_ports(), nbytes=10_000 if args.quick else 30_000, max_baud=9600, pings=0)
    report.update(efficiency_9600=slow["efficiency"], bytes_9600=slow["bytes"])
    streamed = stream(1_000_000 if args.quick else 4_000_000)
    report.update(stream_mb_per_s=streamed["mb_per_s"], stream_cpu_share=streamed["cpu_share"])
    fast = bench_link(*emulator_ports(), nbytes=100_000 if args.quick else 300_000, pings=0)
    report.update(cpu_115200=fast["cpu_sender_stack"], efficiency_115200=fast["efficiency"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
