"""``irda sim``: IrLAP discovery and bulk transfer on the simulated medium with a virtual clock (no port, no
real time), for what a run on hardware cannot repeat: many devices, bit errors, outages."""

from __future__ import annotations

import argparse
import json
import sys

from irsock.cli.common import EXIT_ERROR, EXIT_OK, CliError, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """``irda sim`` and its actions discover and link."""
    sim = commands.add_parser("sim", help="run IrLAP on the simulated medium (virtual clock)")
    sim_cmds = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    discover = sim_cmds.add_parser(
        "discover", help="discovery among N simulated devices",
        description="One initiator runs discovery rounds among N simulated devices until all are found.",
    )
    discover.add_argument("--devices", type=positive_int, default=4, help="devices around the initiator")
    discover.add_argument("--slots", type=int, choices=(1, 6, 8, 16), default=6, help="slots per round")
    discover.add_argument("--seed", type=int, default=0)
    discover.add_argument("--ber", type=_probability, default=0.0, help="bit error rate")
    discover.add_argument("--max-rounds", type=positive_int, default=20)
    discover.add_argument("--json", action="store_true",
                          help="print one JSON object at the end: {devices: [...]} as irda discover prints them, "
                               "rounds, timings")
    discover.set_defaults(func=cmd_sim_discover)

    link = sim_cmds.add_parser(
        "link", help="a bulk transfer over one IrLAP link",
        description="A primary sends N random bytes to a secondary over IrLAP on the simulated medium and "
        "reports goodput, efficiency against the line rate, retransmissions and resets.",
    )
    link.add_argument("--bytes", type=positive_int, default=100_000, help="bytes to send")
    link.add_argument("--baud", type=int, default=115200, help="highest speed both stations offer")
    link.add_argument("--data-size", type=int, default=2048, help="largest data size both stations offer")
    link.add_argument("--window", type=int, default=7, help="largest window both stations offer")
    link.add_argument("--min-turn", type=int, default=10, metavar="US", help="min turnaround both need, us")
    link.add_argument("--ber", type=_probability, default=0.0, help="bit error rate")
    link.add_argument("--drop", type=_probability, default=0.0, help="probability a transmission is lost")
    link.add_argument("--latency", type=float, default=0.0, metavar="MS", help="station processing latency")
    link.add_argument("--outage", type=_outage, action="append", default=[], metavar="START:SECONDS",
                      help="a blocked beam from START for SECONDS (repeatable)")
    link.add_argument("--seed", type=int, default=0)
    link.add_argument("--json", action="store_true",
                      help="print the report as one JSON object (exit status 1 all the same if the transfer failed)")
    link.set_defaults(func=cmd_sim_link)


def _outage(text: str) -> tuple[float, float]:
    try:
        start, seconds = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"outage {text!r} is not START:SECONDS (e.g. 5:3.5)") from None
    if start < 0 or seconds < 0:
        raise argparse.ArgumentTypeError(f"outage {text!r}: start and length cannot be negative")
    return start, seconds


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1)")
    return value


def cmd_sim_discover(args: argparse.Namespace) -> int:
    from irlap.sim import Faults, run_discovery

    report = run_discovery(args.devices, slots=args.slots, seed=args.seed, max_rounds=args.max_rounds,
                           faults=Faults(ber=args.ber))
    data = report.as_dict()
    if args.json:
        print(json.dumps(data))
        return EXIT_OK
    for device in report.devices:
        hints = ", ".join(device["hints"]) or "none"
        print(f"{device['address_hex']}  {device['nickname']:<22} {hints} (hints {device['hint_bytes']})")
    per_round = sum(report.round_seconds) / len(report.round_seconds) if report.round_seconds else 0.0
    print(
        f"{len(report.devices)} of {args.devices} devices found in {report.rounds} round(s) of {args.slots} slots, "
        f"{report.sim_seconds:.3f} s simulated ({per_round:.3f} s per round, {report.collisions} collisions)"
    )
    if len(report.devices) < args.devices:
        print(f"not every device answered: with {args.devices} devices try --slots 16", file=sys.stderr)
    return EXIT_OK


def cmd_sim_link(args: argparse.Namespace) -> int:
    from irlap.qos import BAUD_RATES, DATA_SIZES
    from irlap.sim import Faults, run_link

    if args.baud not in BAUD_RATES or args.baud > 4000000:
        raise CliError(f"--baud {args.baud}: IrDA speeds are 2400, 9600, 19200, 38400, 57600, 115200 (SIR), "
                       "576000, 1152000 (MIR) and 4000000 (FIR)")
    if args.data_size not in DATA_SIZES:
        raise CliError(f"--data-size {args.data_size}: IrLAP data sizes are {', '.join(map(str, DATA_SIZES))}")
    if not 1 <= args.window <= 7:
        raise CliError(f"--window {args.window}: the IrLAP window is 1 to 7 frames")
    from irlap.qos import MIN_TURNAROUND_US

    if args.min_turn not in MIN_TURNAROUND_US:
        raise CliError(f"--min-turn {args.min_turn}: valid values are {', '.join(map(str, MIN_TURNAROUND_US))} us")
    faults = Faults(ber=args.ber, drop=args.drop, outages=list(args.outage), latency=args.latency / 1000)
    report = run_link(args.bytes, baud=args.baud, data_size=args.data_size, window=args.window,
                      min_turn_us=args.min_turn, faults=faults, seed=args.seed)
    data = report.as_dict()
    complete = report.intact and not report.link_lost
    if args.json:
        print(json.dumps(data))
        return EXIT_OK if complete else EXIT_ERROR
    print(
        f"{report.delivered_bytes} of {args.bytes} bytes delivered, {'intact' if report.intact else 'NOT intact'}, "
        f"in {report.sim_seconds:.3f} s simulated\n"
        f"link {report.baud} bit/s, {report.window} x {report.data_size} B; "
        + (f"goodput {report.goodput_Bps:.0f} B/s of {report.line_rate_Bps:.0f} B/s line rate: efficiency "
           f"{report.efficiency:.3f}\n" if complete else "no goodput or efficiency: the transfer did not complete\n")
        + f"{report.retransmissions} frames retransmitted, {report.resets} resets"
        + (", LINK LOST" if report.link_lost else "")
    )
    if not complete:
        print("irda: the transfer failed: " + ("the link was lost" if report.link_lost else "the data arrived damaged")
              + f" after {report.delivered_bytes} of {args.bytes} bytes", file=sys.stderr)
    return EXIT_OK if complete else EXIT_ERROR
