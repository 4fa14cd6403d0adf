"""Benchmark: an OBEX push between two irsock stacks on the emulated medium, in real time; JSON lines.

    python3 benchmarks/obex.py [--bytes 200000] [--baud 115200] [--repeat 1]

The medium is paced like a real SIR line, so the figures are what a user would see with two dongles:
goodput end to end (OBEX CONNECT to the last response), efficiency against the line rate (baud / 10
bytes per second), discovery time, TEST round trips and CPU. CPU is counted per thread (Linux /proc):
``cpu_sender_stack`` is the sending stack's engine and reader threads plus the application thread that
feeds OBEX, as a fraction of one core over the transfer; the receiver and the whole process (which also
runs the emulator, absent in a real setup) are reported apart. ``irda bench`` prints the same figures.
"""

from __future__ import annotations

import argparse
import json

from irsock.bench import bench_link, emulator_ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=200_000)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        report = bench_link(*emulator_ports(), nbytes=args.bytes, max_baud=args.baud)
        print(json.dumps({"scenario": f"OBEX push {args.bytes} B, emulator, max {args.baud} bit/s, real time",
                          **report}), flush=True)


if __name__ == "__main__":
    main()
