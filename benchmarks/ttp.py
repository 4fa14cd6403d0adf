"""Benchmark: TinyTP streams over IrLMP/IrLAP on the simulated medium; one JSON object per scenario.

    python3 benchmarks/ttp.py [--bytes 1000000]
"""

from __future__ import annotations

import argparse
import json
import time

from irlap.sim import Faults
from irsock.sim.scenarios import run_ttp_transfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenarios = [
        ("1 stream, 115200", {}, None),
        ("5 streams, 115200", {"connections": 5, "nbytes": args.bytes // 5}, None),
        ("1 stream SAR (SEQPACKET), 115200", {"sar": True}, None),
        ("1 stream, BER 1e-5", {}, Faults(ber=1e-5)),
        ("slow reader 2 kB/s", {"nbytes": 60_000, "reader_bytes_per_s": 2000}, None),
        ("1 stream, 9600", {"baud": 9600, "nbytes": args.bytes // 20}, None),
    ]
    for name, options, faults in scenarios:
        options = {"nbytes": args.bytes, **options}
        cpu = time.process_time()
        report = run_ttp_transfer(options.pop("nbytes"), seed=args.seed, faults=faults, **options)
        cpu = time.process_time() - cpu
        print(json.dumps({"scenario": name, **report.as_dict(), "cpu_seconds": round(cpu, 3)}))


if __name__ == "__main__":
    main()
