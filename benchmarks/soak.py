"""Benchmark: the simulator soak (irsock/soak.py) for hours of simulated time; one JSON object per seed, then a total.

    python3 benchmarks/soak.py [--hours 10] [--seeds 3] [--first-seed 0] [--baud 115200]

Each line: seed, baud, simulated seconds, connections (completed, broken), bytes sent / delivered /
in completed connections, goodput, IrLAP retransmissions and resets, link disconnects, outages,
duplicated and reordered frames, discovery rounds, the largest queue and log sizes seen, wall time,
CPU, and the failures found (``failure_count`` 0 when every check held). Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from irsock.sim.soak import run_soak

SUMMED = ("sim_seconds", "connections", "completed", "broken", "bytes_sent", "bytes_delivered", "bytes_completed",
          "retransmissions", "resets", "lap_disconnects", "outages", "long_outages", "duplicated", "reordered",
          "discovery_rounds", "events", "sim_events", "wall_seconds", "cpu_seconds", "failure_count")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=10.0, help="simulated hours per seed")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--baud", type=int, default=None, help="fix the speed (default: chosen by each seed)")
    args = parser.parse_args()
    total: dict = dict.fromkeys(SUMMED, 0)
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        report = run_soak(args.hours * 3600, seed=seed, baud=args.baud).as_dict()
        print(json.dumps(report), flush=True)
        for key in SUMMED:
            total[key] += report[key]
    total = {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}
    total["goodput_Bps"] = round(total["bytes_delivered"] / max(total["sim_seconds"], 1e-9), 1)
    total["wall_seconds_total"] = round(time.perf_counter() - started, 3)
    print(json.dumps({"total": True, "seeds": args.seeds, "hours_each": args.hours, **total}))
    return 1 if total["failure_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
