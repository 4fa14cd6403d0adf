"""Benchmark: what the stack daemon costs. One JSON object.

    python3 benchmarks/daemon.py [--stream-bytes 8000000] [--paced-bytes 1000000] [--skip-paced]

Both figures send a TinyTP stream to a sink on the same emulated medium, twice: from a socket of an in-process
interface (``in_process``) and from a socket of another process that uses ``irda serve`` (a :class:`StackDaemon`
run here, on the same medium) through its Unix socket (``daemon``). The receiver measures both the same way, from
its accept to the sender's EOF after the last byte.

- ``stream``: ``irsim://M?pace=0`` (no line time): the stack, the daemon's pumps and the extra process hop;
  ``c_library``: the sender is a C program (native/afirda_check.c) through the preload library of ``irda run``.
- ``paced``: ``irsim://M`` in real time at 115200 bit/s: the daemon's overhead on a real transfer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import irsock
from irsock.daemon.server import StackDaemon
from irsock.net import constants as C

ROOT = Path(__file__).resolve().parent.parent

SENDER = r'''
import sys, irsock
port, device, nbytes = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
iface = irsock.attach(port, nickname="sender")
sock = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
sock.connect((device, "Bench"))
block = bytes(range(256)) * 256
sent = 0
while sent < nbytes:
    chunk = block[: nbytes - sent]
    sock.sendall(chunk)
    sent += len(chunk)
sock.close()
iface.close()
'''


def sink(receiver, result: dict, done: threading.Event, counted: bool = False) -> irsock.socket:
    """Receive one connection until EOF; ``counted``: the sender says how many bytes first ("N\n") and waits for a
    line back after them (native/afirda_check.c's client), so the sink answers instead of waiting for EOF."""
    listener = receiver.socket(C.AF_IRDA, C.SOCK_STREAM)
    listener.bind(("Bench",))
    listener.listen()

    def run() -> None:
        conn, _peer = listener.accept()
        started, cpu = time.monotonic(), time.process_time()
        received, buffer, expected = 0, b"", None
        with conn:
            while data := conn.recv(65536):
                if counted and expected is None:
                    buffer += data
                    if b"\n" not in buffer:
                        continue
                    head, _, data = buffer.partition(b"\n")
                    expected = int(head)
                received += len(data)
                if expected is not None and received >= expected:
                    conn.sendall(b"ok\n")
                    break
        result.update(seconds=time.monotonic() - started, cpu=time.process_time() - cpu, received=received)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return listener


def c_sender() -> list[str] | None:
    """native/afirda_check.c compiled (None without a C compiler)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    out = Path(tempfile.mkdtemp(prefix="irsb-")) / "afirda_check"
    subprocess.run([cc, "-O2", "-pthread", "-o", str(out), str(ROOT / "native" / "afirda_check.c")], check=True)
    return [str(out), "client", "Bench"]


def one_run(nbytes: int, pace: bool, through_daemon: bool, c_program: list[str] | None = None) -> dict:
    name = f"bench-daemon-{uuid.uuid4().hex[:8]}"
    query = "" if pace else "?pace=0"
    receiver = irsock.attach(f"irsim://{name}{query}", nickname="receiver")
    daemon = None
    try:
        result: dict = {}
        done = threading.Event()
        listener = sink(receiver, result, done, counted=c_program is not None)
        if through_daemon:
            path = Path(tempfile.mkdtemp(prefix="irsb-")) / "d.sock"
            daemon = StackDaemon(f"irsim://{name}{query}", nickname="sender", path=path).start()
            if c_program is not None:  # an unmodified C program through the preload library (irda run)
                from irsock.daemon.native import library_path, preload_environment

                env = preload_environment(library_path(), path)
                sender = subprocess.Popen([*c_program, str(nbytes)], env=env, stdout=subprocess.DEVNULL)
            else:
                sender = subprocess.Popen([sys.executable, "-c", SENDER, f"unix:{path}", hex(receiver.address),
                                           str(nbytes)])
        else:
            sender = None
            sender_iface = irsock.attach(f"irsim://{name}{query}", nickname="sender")

            def send() -> None:
                with sender_iface.socket(C.AF_IRDA, C.SOCK_STREAM) as sock:
                    sock.connect((receiver.address, "Bench"))
                    block = bytes(range(256)) * 256
                    sent = 0
                    while sent < nbytes:
                        chunk = block[: nbytes - sent]
                        sock.sendall(chunk)
                        sent += len(chunk)

            threading.Thread(target=send, daemon=True).start()
        done.wait(nbytes / 5000 + 120)
        if sender is not None:
            sender.wait(60)
        else:
            sender_iface.close()
        listener.close()
        seconds = result.get("seconds") or float("nan")
        out = {"bytes": result.get("received", 0), "seconds": round(seconds, 3),
               "mb_per_s": round(result.get("received", 0) / seconds / 1e6, 4)}
        if pace:
            out["efficiency"] = round(result.get("received", 0) * 10 / seconds / 115200, 4)
        return out
    finally:
        if daemon is not None:
            daemon.stop()
        receiver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-bytes", type=int, default=8_000_000)
    parser.add_argument("--paced-bytes", type=int, default=1_000_000)
    parser.add_argument("--skip-paced", action="store_true", help="only the unpaced stream (seconds, not minutes)")
    parser.add_argument("--repeat", type=int, default=5, help="unpaced runs of each kind (the median is reported)")
    args = parser.parse_args()
    report: dict = {"python": sys.version.split()[0]}
    # the unpaced figures move by 10% from run to run on a shared machine: runs interleaved, the median of each kind
    program = c_sender()
    kinds = {"in_process": (False, None), "daemon": (True, None)}
    if program is not None:
        kinds["c_library"] = (True, program)
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(args.repeat):
        for kind, (through_daemon, c_program) in kinds.items():
            runs[kind].append(one_run(args.stream_bytes, False, through_daemon, c_program))
    stream: dict = {}
    for kind, results in runs.items():
        results.sort(key=lambda r: r["mb_per_s"])
        stream[kind] = dict(results[len(results) // 2], runs_mb_per_s=[r["mb_per_s"] for r in results])
    stream["ratio"] = round(stream["daemon"]["mb_per_s"] / stream["in_process"]["mb_per_s"], 3)
    if "c_library" in stream:
        stream["c_ratio"] = round(stream["c_library"]["mb_per_s"] / stream["in_process"]["mb_per_s"], 3)
    report["stream"] = stream
    if not args.skip_paced:
        paced = {kind: one_run(args.paced_bytes, True, kind == "daemon") for kind in ("in_process", "daemon")}
        paced["ratio"] = round(paced["daemon"]["mb_per_s"] / paced["in_process"]["mb_per_s"], 4)
        report["paced_115200"] = paced
    print(json.dumps(report))


if __name__ == "__main__":
    main()
