"""MIR and FIR: goodput, efficiency and CPU at 576000, 1152000 and 4000000 bit/s; prints one JSON object.

* ``sim``: an IrLAP bulk transfer of ``--sim-bytes`` on the simulator's virtual clock (``irlap.sim.run_link``):
  the protocol and framing overhead alone, no scheduling latency.
* ``emulator``: ``irda bench`` in real time between two stacks on the emulated medium, both on the emulator's
  host-framed ``fir`` dongle (``irsim://M?dongle=fir``): discovery at 9600, connection, an OBEX push of
  ``--bytes`` with its TinyTP/IrLMP/OBEX overhead; CPU of both stacks' threads and of the whole process
  (which also runs the medium), as a share of one core.

Issue 18's target for FIR between two emulated dongles: goodput >= 0.85 of the line rate (500000 B/s of data
at 4 Mbit/s), CPU <= 0.5 of a core for both stacks together.

    python3 benchmarks/fast.py [--bytes N] [--sim-bytes N] [--speeds 576000,1152000,4000000]
"""

from __future__ import annotations

import argparse
import json
import time

from irlap.sim import run_link
from irsock.apps.bench import bench_link, emulator_dongle, emulator_ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=2_000_000, help="bytes pushed in real time (default 2 MB)")
    parser.add_argument("--sim-bytes", type=int, default=4_000_000, help="bytes on the simulator (default 4 MB)")
    parser.add_argument("--speeds", default="576000,1152000,4000000")
    args = parser.parse_args()
    out: dict = {"sim": {}, "emulator": {}}
    for baud in (int(s) for s in args.speeds.split(",")):
        cpu = time.process_time()
        report = run_link(args.sim_bytes, baud=baud)
        out["sim"][str(baud)] = {**report.as_dict(), "cpu_s": round(time.process_time() - cpu, 3)}
        bench = bench_link(*emulator_ports(baud), dongle_a=emulator_dongle(baud), dongle_b=emulator_dongle(baud),
                           nbytes=args.bytes, max_baud=baud, pings=0)
        both = None
        if bench["cpu_sender_stack"] is not None and bench["cpu_receiver_stack"] is not None:
            both = round(bench["cpu_sender_stack"] + bench["cpu_receiver_stack"], 4)
        out["emulator"][str(baud)] = {
            "bytes": bench["bytes"], "seconds": bench["seconds"], "goodput_Bps": bench["goodput_Bps"],
            "line_rate_Bps": bench["line_rate_Bps"], "efficiency": bench["efficiency"], "intact": bench["intact"],
            "cpu_both_stacks": both, "cpu_process_all": bench["cpu_process_all"],
            "link": {k: (bench["qos_a"] or {}).get(k) for k in ("baud", "tx_data_size", "tx_window")},
        }
    fir = out["emulator"].get("4000000")
    if fir:
        out["target_fir"] = {"efficiency_min": 0.85, "cpu_max": 0.5,
                             "met": bool(fir["efficiency"] and fir["efficiency"] >= 0.85
                                         and fir["cpu_both_stacks"] is not None and fir["cpu_both_stacks"] <= 0.5)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
