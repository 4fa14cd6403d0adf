"""The figures of one link: discovery time, turnaround, goodput and efficiency of an OBEX push, CPU.

``irda bench`` prints them, ``benchmarks/obex.py`` and the HIL rig report use the same function, so a
number in the report means the same thing as the one on the command line. Everything is real time:
on the emulator the medium is paced like the real line (SIR, or MIR/FIR through the emulator's ``fir`` dongle),
on hardware it is the line.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from irlap.qos import QosParams
from irsock import net
from irsock.apps.transfer import OBEX_HINTS, Inbox, connect_obex, line_rate, obex_listener, push_files
from irsock.net import constants as C

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NDM_BAUD = 9600


def thread_cpu(native_ids: list[int]) -> float | None:
    """CPU seconds (user + system) of these threads of this process; None where /proc is missing."""
    total = 0
    for tid in native_ids:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def stack_threads(iface: net.Interface) -> list[int]:
    """Native ids of the threads that run this interface's stack (engine and reader)."""
    return [t.native_id for t in iface.runtime.threads if t.native_id]


def discover_peer(iface: net.Interface, address: int, timeout: float = 15.0) -> float | None:
    """Seconds of discovery rounds until ``address`` answers, None if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(d.address == address for d in iface.discover()):
            return time.monotonic() - started
    return None


def ping(iface: net.Interface, address: int, count: int = 5, size: int = 32, wait: float = 2.0) -> list[float]:
    """Round-trip times (seconds) of TEST frames that came back intact; lost ones are left out."""
    rtts = []
    for sequence in range(count):
        payload = struct.pack(">I", sequence).ljust(size, b"\xa5")
        with iface.cond:
            iface.test_results.clear()
        iface.send_test(address, payload)
        deadline = time.monotonic() + wait
        with iface.cond:
            while time.monotonic() < deadline and not any(r.data == payload for r in iface.test_results):
                iface.cond.wait(deadline - time.monotonic())
            reply = next((r for r in iface.test_results if r.data == payload), None)
        if reply is not None:
            sent_at = iface.test_sent_at()
            rtts.append(reply.time - sent_at)
    return rtts


def test_airtime(size: int, baud: int = NDM_BAUD) -> float:
    """Seconds a TEST frame of ``size`` info bytes takes on the line (address, control, 8 address bytes, FCS,
    BOF/EOF and the 10 extra BOFs of NDM; escapes ignored)."""
    return (size + 2 + 8 + 2 + 2 + 10) * 10 / baud


def qos_dict(iface: net.Interface) -> dict[str, Any] | None:
    params = iface.link_params()
    return asdict(params) if params is not None else None


def bench_link(port_a: str, port_b: str, *, dongle_a: str = "plain", dongle_b: str = "plain", nbytes: int = 200_000,
               max_baud: int = 115200, pings: int = 5) -> dict[str, Any]:
    """A sends to B: discovery, TEST round trips, an OBEX push of ``nbytes``; the figures as a dict."""
    qos = QosParams.offer(max_baud=max_baud)
    receiver = net.attach(port_b, dongle=dongle_b, nickname="bench-b", hints=OBEX_HINTS, qos=qos)
    sender = None
    try:
        sender = net.attach(port_a, dongle=dongle_a, nickname="bench-a", qos=qos)
        report: dict[str, Any] = {"port_a": port_a, "port_b": port_b, "dongle_a": dongle_a, "dongle_b": dongle_b,
                                  "max_baud": max_baud, "bytes": nbytes}
        report["discovery_s"] = discover_peer(sender, receiver.address)
        if report["discovery_s"] is None:
            raise OSError(f"B (0x{receiver.address:08x}) never answered A's discovery: are the dongles facing "
                          "each other, and are the dongle types right?")
        rtts = ping(sender, receiver.address, pings)
        report["ping_rtt_ms"] = [round(r * 1000, 2) for r in rtts]
        report["ping_loss"] = round(1 - len(rtts) / pings, 3) if pings else None
        report["turnaround_ms"] = round((min(rtts) - 2 * test_airtime(32)) / 2 * 1000, 2) if rtts else None
        report.update(_push(sender, receiver, nbytes))
        return report
    finally:
        if sender is not None:
            sender.close()
        receiver.close()


def _push(sender: net.Interface, receiver: net.Interface, nbytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="irsock-bench-") as work:
        inbox = Path(work) / "inbox"
        inbox.mkdir()
        source = Path(work) / "payload.bin"
        source.write_bytes(random.Random(nbytes).randbytes(nbytes))
        with Inbox(obex_listener(receiver), inbox) as receiving:
            with sender.socket(C.AF_IRDA, C.SOCK_STREAM) as sock:
                sock.settimeout(120)
                connect_obex(sock, receiver.address)
                tx_threads = stack_threads(sender) + [threading.get_native_id()]
                rx_threads = stack_threads(receiver) + [receiving.native_id or 0]
                cpu_tx, cpu_rx, cpu_all = thread_cpu(tx_threads), thread_cpu(rx_threads), time.process_time()
                with open(os.devnull, "w") as quiet:
                    summary = push_files(sock, [source], rate=line_rate(sender), out=quiet, tty=False)
                cpu_tx_end, cpu_rx_end = thread_cpu(tx_threads), thread_cpu(rx_threads)
                cpu_all_end = time.process_time()
                qos = {"qos_a": qos_dict(sender), "qos_b": qos_dict(receiver)}
            received = receiving.wait(30)
        intact = bool(received) and hashlib.sha256(received[0].path.read_bytes()).digest() == \
            hashlib.sha256(source.read_bytes()).digest()
    seconds = summary.seconds

    def share(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round((end - start) / seconds, 4)

    return {
        "seconds": round(seconds, 3),
        "goodput_Bps": round(summary.rate, 1),
        "line_rate_Bps": summary.line_rate,
        "efficiency": None if summary.efficiency is None else round(summary.efficiency, 4),
        "intact": intact,
        "verified": bool(received) and received[0].verified is True,
        "cpu_sender_stack": share(cpu_tx, cpu_tx_end),
        "cpu_receiver_stack": share(cpu_rx, cpu_rx_end),
        "cpu_process_all": round((cpu_all_end - cpu_all) / seconds, 4),
        **qos,
    }


def emulator_ports(max_baud: int = 115200) -> tuple[str, str]:
    """Two ends of a fresh emulated medium (paced like the real line); above 115200 bit/s both carry the
    emulator's host-framed ``fir`` dongle (drive them with ``dongle="fir"``: :func:`emulator_dongle`)."""
    medium = f"bench-{uuid.uuid4().hex[:8]}"
    query = "?dongle=fir" if max_baud > 115200 else ""
    return f"irsim://{medium}{query}", f"irsim://{medium}{query}"


def emulator_dongle(max_baud: int) -> str:
    """The driver of :func:`emulator_ports`' dongles: plain at SIR speeds, the fir test dongle above."""
    return "fir" if max_baud > 115200 else "plain"
