"""Benchmark: an OBEX push between two irsock stacks on the emulated medium, in real time; JSON lines.

    python3 benchmarks/obex.py [--bytes 200000] [--baud 115200] [--repeat 1]

The medium is paced like a real SIR line, so the figures are what a user would see with two dongles:
goodput end to end (OBEX CONNECT to the last response), efficiency against the line rate (baud / 10
bytes per second), discovery time, TEST round trips and CPU. CPU is counted per thread (Linux /proc):
``cpu_sender_stack`` is the sending stack's engine and reader threads plus the application thread that
feeds OBEX, as a fraction of one core over the transfer; the receiver and the whole process (which also
runs the emulator, absent in a real setup) are reported apart. ``irda bench`` prints the same figures.

``--tcp-bytes N`` adds a push of N bytes over loopback TCP (client and inbox in this process): the OBEX
code's own throughput, where the line is not the limit (it guards against per-packet stalls such as
Nagle's algorithm, which once held every packet for 40 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import irsock
from irsock.apps import transfer
from irsock.apps.bench import bench_link, emulator_ports


def tcp_push(nbytes: int) -> dict:
    """One OBEX push of ``nbytes`` over loopback TCP, through ``irda send``/``receive``'s own functions."""
    with tempfile.TemporaryDirectory(prefix="irsock-bench-tcp-") as work:
        inbox = Path(work) / "inbox"
        inbox.mkdir()
        source = Path(work) / "payload.bin"
        source.write_bytes(os.urandom(nbytes))
        cpu = time.process_time()
        with transfer.Inbox(transfer.tcp_listener("127.0.0.1:0"), inbox) as receiving:
            address = f"127.0.0.1:{receiving.listener.getsockname()[1]}"
            with open(os.devnull, "w") as quiet, transfer.connect_tcp(address, 60) as sock:
                summary = transfer.push_files(sock, [source], rate=None, out=quiet, tty=False)
            stored = receiving.wait(60)
        cpu = time.process_time() - cpu
        intact = bool(stored) and stored[0].path.read_bytes() == source.read_bytes()
    return {"scenario": f"OBEX push {nbytes} B over loopback TCP", "bytes": nbytes,
            "seconds": round(summary.seconds, 3), "goodput_Bps": round(summary.rate, 1), "intact": intact,
            "verified": summary.verified == 1, "cpu_process_s": round(cpu, 3), "irsock_version": irsock.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=200_000)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tcp-bytes", type=int, default=0, help="also push this many bytes over loopback TCP")
    args = parser.parse_args()
    if args.tcp_bytes:
        print(json.dumps(tcp_push(args.tcp_bytes)), flush=True)
    for _ in range(args.repeat):
        report = bench_link(*emulator_ports(), nbytes=args.bytes, max_baud=args.baud)
        print(json.dumps({"scenario": f"OBEX push {args.bytes} B, emulator, max {args.baud} bit/s, real time",
                          **report}), flush=True)


if __name__ == "__main__":
    main()
