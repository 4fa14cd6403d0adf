"""Benchmark: IrLAP bulk transfer on the simulated medium; prints one JSON object per scenario.

    python3 benchmarks/link.py            # all scenarios
    python3 benchmarks/link.py --bytes 200000

Figures: goodput and efficiency against the line rate (simulated time), and the CPU time the
simulator needed (process time of this Python process).
"""

from __future__ import annotations

import argparse
import json
import time

from irlap.sim import Faults, run_discovery, run_link

SCENARIOS = [
    ("115200 defaults", {"baud": 115200}, Faults()),
    ("115200 ber 1e-5", {"baud": 115200}, Faults(ber=1e-5)),
    ("115200 outage 5 s", {"baud": 115200}, Faults(outages=[(10.0, 5.0)])),
    ("57600 defaults", {"baud": 57600}, Faults()),
    ("9600 64 B window 1", {"baud": 9600, "data_size": 64, "window": 1}, Faults()),
    ("9600 defaults", {"baud": 9600}, Faults()),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for name, options, faults in SCENARIOS:
        nbytes = args.bytes if options["baud"] >= 57600 else args.bytes // 10
        cpu = time.process_time()
        report = run_link(nbytes, faults=faults, seed=args.seed, **options)
        cpu = time.process_time() - cpu
        print(json.dumps({"scenario": name, "bytes": nbytes, **report.as_dict(), "cpu_seconds": round(cpu, 3),
                          "sim_events": report.cpu_events}))
    for slots in (6, 16):
        cpu = time.process_time()
        rounds = [run_discovery(8, slots=slots, seed=seed) for seed in range(20)]
        cpu = time.process_time() - cpu
        per_round = [sum(r.round_seconds) / r.rounds for r in rounds]
        print(json.dumps({
            "scenario": f"discovery 8 devices {slots} slots (20 seeds)",
            "all_found": sum(len(r.devices) == 8 for r in rounds),
            "mean_rounds": round(sum(r.rounds for r in rounds) / len(rounds), 2),
            "max_rounds": max(r.rounds for r in rounds),
            "mean_round_seconds": round(sum(per_round) / len(per_round), 3),
            "cpu_seconds": round(cpu, 3),
        }))


if __name__ == "__main__":
    main()
