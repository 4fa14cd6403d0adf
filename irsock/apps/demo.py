"""``irda demo``: the main job on the built-in emulator, no hardware needed.

Two complete stacks share an emulated infrared medium at 115200 bit/s (paced like the real line): one
runs an OBEX inbox, the other discovers it, looks its OBEX service up in IAS, pushes a file with the
progress display, and the receiver verifies the SHA-256 the sender put in the OBEX headers.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from irsock import net
from irsock.apps.transfer import (
    OBEX_HINTS,
    Inbox,
    Summary,
    TransferError,
    choose_device,
    connect_obex,
    describe_received,
    line_rate,
    obex_listener,
    push_files,
)
from irsock.net import constants as C

DEFAULT_SIZE = 32 * 1024


@dataclass
class DemoReport:
    summary: Summary
    received_name: str
    intact: bool
    pcap: Path | None


def run_demo(size: int = DEFAULT_SIZE, pcap: Path | None = None, out: TextIO | None = None,
             tty: bool | None = None) -> DemoReport:
    """Run the whole demo, printing what happens to ``out``; raises TransferError if anything fails."""
    from irlap.pcap import PcapWriter

    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    medium = f"demo-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    trace = PcapWriter(pcap) if pcap else None
    receiver = sender = None
    try:
        with tempfile.TemporaryDirectory(prefix="irsock-demo-") as work:
            inbox = Path(work) / "inbox"
            inbox.mkdir()
            source = Path(work) / "irsock-demo.bin"
            content = random.Random(size).randbytes(size)
            source.write_bytes(content)
            say(f"emulated infrared medium irsim://{medium} at 115200 bit/s, two irsock stacks")
            receiver = net.attach(f"irsim://{medium}", nickname="demo-receiver", hints=OBEX_HINTS)
            sender = net.attach(f"irsim://{medium}", nickname="demo-sender", trace=trace)
            with Inbox(obex_listener(receiver), inbox) as receiving:
                say(f"receiver 0x{receiver.address:08x} 'demo-receiver' runs an OBEX inbox")
                say("discovery:")
                with sender.socket(C.AF_IRDA, C.SOCK_STREAM) as sock:
                    sock.settimeout(30)
                    device = choose_device(sock, log=lambda text: say("  " + text), iface=sender)
                    say(f"pushing to 0x{device.address:08x} {device.name!r}")
                    connect_obex(sock, device.address, log=lambda text: say("  " + text))
                    summary = push_files(sock, [source], rate=line_rate(sender), out=out, tty=tty)
                received = receiving.wait(30)
            if not received:
                raise TransferError("the receiver stored nothing")
            stored = received[0]
            say(describe_received(stored))
            intact = hashlib.sha256(stored.path.read_bytes()).digest() == hashlib.sha256(content).digest()
            say(summary.describe())
            say("the file arrived intact" if intact else "THE FILE ARRIVED DAMAGED")
            if pcap:
                say(f"capture of the sender's side written to {pcap} (wireshark {pcap})")
            return DemoReport(summary, stored.name, intact, pcap)
    finally:
        for iface in (sender, receiver):
            if iface is not None:
                iface.close()
        if trace is not None:
            trace.close()
