"""Benchmark: an OBEX push at 115200 bit/s through each emulated USB IrDA chip, against the serial reference.

    python3 benchmarks/usb_link.py                 # every chip, 100 kB each, paced in real time
    python3 benchmarks/usb_link.py --bytes 500000 --chip stir4200
    python3 benchmarks/usb_link.py --pair --chip mcs7780 --max-baud 4000000 --bytes 2000000 --runs 3

One JSON object per line: the sender's port (a ``usb:`` URL of an emulated chip on an ``irsim`` medium, or the
plain serial model for the reference), the receiver (the plain serial model on the same medium; with
``--pair`` a second emulated chip of the same kind, as two adapters facing each other), and the figures of
``irda bench`` (irsock.apps.bench.bench_link): goodput, efficiency against the line rate, CPU. ``--max-baud``
is the fastest speed the two may agree on (above 115200 only with ``--pair`` and a chip that has it: the
serial model is SIR-only); ``--runs`` repeats each case and adds the median efficiency.
The issue's targets: efficiency >= 0.95 over a USB SIR chip, as over the serial models; at FIR, two emulated
chips of each FIR-capable kind (``--pair --max-baud 4000000 --chip mcs7780 --chip stir4200 --chip irda-usb-fir
--chip stir421x``), see docs/performance.md for the figures. The emulated STIr421x gets a synthetic firmware
patch written to a temporary directory (never SigmaTel's file), named in its URL (``firmware=``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import uuid
from pathlib import Path

from irlap.dongles.usb.bridge import stir421x_firmware_name
from irlap.emulator.usb import CHIPS, Stir421xChip, stir421x_patch_file
from irsock.apps.bench import bench_link


def chip_url(chip: str, medium: str, firmware: Path) -> str:
    """A usb: URL that plugs a new emulated ``chip`` into ``medium``: by its id, or by name for a model that shares
    its id (the FIR bridge); the STIr421x is told where its (synthetic) patch is."""
    cls = CHIPS[chip]
    where = f"usb:{cls.vid:04x}:{cls.pid:04x}?irsim={medium}" if cls.by_id else f"usb:?chip={chip}&irsim={medium}"
    return where + (f"&firmware={firmware}" if cls is Stir421xChip else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=100_000)
    parser.add_argument("--chip", action="append", choices=sorted(CHIPS), help="only these chips (repeatable)")
    parser.add_argument("--max-baud", type=int, default=115200, help="the fastest speed negotiated (default 115200)")
    parser.add_argument("--pair", action="store_true", help="the receiver is a second emulated chip of the same kind")
    parser.add_argument("--runs", type=int, default=1, help="repeat each case (the median efficiency is added)")
    args = parser.parse_args()
    if args.max_baud > 115200 and not args.pair:
        parser.error("--max-baud above 115200 needs --pair (the serial reference model is SIR-only)")
    chips = args.chip or sorted(CHIPS)
    firmware = Path(tempfile.mkdtemp(prefix="irsock-bench-fw-"))
    (firmware / stir421x_firmware_name(Stir421xChip.bcd_device)).write_bytes(
        stir421x_patch_file(Stir421xChip.bcd_device))
    cases = [(name, name) for name in chips]
    if not args.pair:
        cases.insert(0, ("serial plain (reference)", None))
    for label, chip in cases:
        efficiencies = []
        for run in range(args.runs):
            medium = f"bench-usb-{uuid.uuid4().hex[:8]}"
            if chip is None:
                port_a = f"irsim://{medium}"
            else:
                port_a = chip_url(chip, medium, firmware)
            port_b = port_a if args.pair else f"irsim://{medium}"  # with --pair: a second chip plugged in
            report = bench_link(port_a, port_b, nbytes=args.bytes, max_baud=args.max_baud, pings=3)
            efficiencies.append(report.get("efficiency") or 0.0)
            cpu = [report.get("cpu_sender_stack"), report.get("cpu_receiver_stack")]
            line = {"scenario": f"{args.max_baud} OBEX push from {label} to "
                                f"{label if args.pair else 'serial plain'}",
                    "chip": chip, "run": run + 1, "efficiency": report.get("efficiency"),
                    "goodput_Bps": report.get("goodput_Bps"), "intact": report.get("intact"),
                    "cpu_both_stacks": round(sum(cpu), 4) if None not in cpu else None,
                    "bytes": args.bytes, "report": report}
            if args.runs > 1 and run + 1 == args.runs:
                line["median_efficiency"] = statistics.median(efficiencies)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
