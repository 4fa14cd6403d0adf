"""Benchmark: an OBEX push at 115200 bit/s through each emulated USB IrDA chip, against the serial reference.

    python3 benchmarks/usb_link.py                 # every chip, 100 kB each, paced in real time
    python3 benchmarks/usb_link.py --bytes 500000 --chip stir4200

One JSON object per line: the sender's port (a ``usb:`` URL of an emulated chip on an ``irsim`` medium, or the
plain serial model for the reference), the receiver (always the plain serial model on the same medium), and
the figures of ``irda bench`` (irsock.apps.bench.bench_link): goodput, efficiency against the line rate, CPU.
The issue's target: efficiency >= 0.95 over a USB SIR chip, as over the serial models.
"""

from __future__ import annotations

import argparse
import json
import uuid

from irlap.emulator.usb import CHIPS
from irsock.apps.bench import bench_link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=100_000)
    parser.add_argument("--chip", action="append", choices=sorted(CHIPS), help="only these chips (repeatable)")
    args = parser.parse_args()
    cases = [("serial plain (reference)", None)] + [(name, name) for name in (args.chip or sorted(CHIPS))]
    for label, chip in cases:
        medium = f"bench-usb-{uuid.uuid4().hex[:8]}"
        if chip is None:
            port_a = f"irsim://{medium}"
        else:
            cls = CHIPS[chip]
            port_a = f"usb:{cls.vid:04x}:{cls.pid:04x}?irsim={medium}"
        report = bench_link(port_a, f"irsim://{medium}", nbytes=args.bytes, max_baud=115200, pings=3)
        print(json.dumps({"scenario": f"115200 OBEX push from {label}", "chip": chip,
                          "efficiency": report.get("efficiency"), "goodput_Bps": report.get("goodput_Bps"),
                          "intact": report.get("intact"), "bytes": args.bytes, "report": report}), flush=True)


if __name__ == "__main__":
    main()
