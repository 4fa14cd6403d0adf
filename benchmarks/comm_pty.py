"""Benchmark: bytes through two virtual serial ports at 115200 bit/s; one JSON object.

    python3 benchmarks/comm_pty.py [--bytes 200000] [--baud 115200]

Two interfaces on the emulated medium in real time (``irsim://M``, held at ``--baud``): one runs
``irda comm --serve`` (a PTY per incoming connection), the other ``irda comm --pty`` connected to it (the
classes behind both commands, in this process). A program writes random bytes into the DTE's PTY, another reads
them from the served PTY; the figure is the goodput between the first write and the last read, and
``efficiency`` that goodput over the line rate (baud / 10 bytes/s: a start and a stop bit per byte on SIR).
Each side's PTY is set raw at the benchmark's speed with termios, as a terminal program would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import sys
import termios
import threading
import time
import tty
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import irsock  # noqa: E402 - after the path fix-up for running from a checkout
from irlap.qos import QosParams  # noqa: E402
from irsock.apps.comm import SPEEDS, CommBridge, CommServer  # noqa: E402


def open_raw(path: str, baud: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    speed = next(constant for constant, rate in SPEEDS.items() if rate == baud)
    attrs[4] = attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def comm_pty(nbytes: int, baud: int = 115200) -> dict:
    name = f"comm-{uuid.uuid4().hex[:8]}"
    qos = QosParams.offer(max_baud=baud)
    dte_iface = irsock.attach(f"irsim://{name}", nickname="dte", qos=qos)
    dce_iface = irsock.attach(f"irsim://{name}", nickname="dce", qos=qos)
    served = []
    server = CommServer(dce_iface, on_port=served.append).start()
    bridge = CommBridge(dte_iface, to="dce", idle=0).start()
    payload = random.Random(1).randbytes(nbytes)
    received = bytearray()
    try:
        deadline = time.monotonic() + 10
        while not served and time.monotonic() < deadline:
            time.sleep(0.01)
        writer_fd, reader_fd = open_raw(bridge.path, baud), open_raw(served[0].path, baud)
        done = threading.Event()

        def read_all() -> None:
            while len(received) < nbytes:
                if select.select([reader_fd], [], [], 30)[0]:
                    received.extend(os.read(reader_fd, 65536))
                else:
                    break
            done.set()

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        cpu_before = time.process_time()
        started = time.monotonic()
        view = memoryview(payload)
        while view:
            view = view[os.write(writer_fd, view[:4096]):]
        done.wait(nbytes / (baud / 10) * 3 + 30)
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        params = dte_iface.link_params()
        for fd in (writer_fd, reader_fd):
            os.close(fd)
    finally:
        bridge.close()
        server.close()
        dte_iface.close()
        dce_iface.close()
    goodput = len(received) / elapsed
    return {"bytes": nbytes, "received_intact": bytes(received) == payload, "baud": baud,
            "link_baud": None if params is None else params.baud, "seconds": round(elapsed, 3),
            "goodput_Bps": round(goodput), "line_rate_Bps": baud // 10,
            "efficiency": round(goodput / (baud / 10), 4), "cpu_share": round(cpu / elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=200_000)
    parser.add_argument("--baud", type=int, default=115200)
    args = parser.parse_args()
    print(json.dumps(comm_pty(args.bytes, args.baud)))


if __name__ == "__main__":
    main()
