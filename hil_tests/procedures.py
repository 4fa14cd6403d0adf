"""Bench procedures the scenarios are made of: push a file and check it, echo through a socket.

Each returns the figures the rig report plots. They use only the public stack (``irsock.attach``,
sockets, the OBEX transfer functions), so a scenario exercises what a user runs.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import irsock
from irsock.apps import bench
from irsock.apps.transfer import Inbox, connect_obex, line_rate, obex_listener, push_files


@dataclass
class PushOutcome:
    sent: int
    seconds: float
    goodput_Bps: float
    efficiency: float | None
    stored: list = field(default_factory=list)  # ReceivedFile of what the receiver kept
    inbox_files: list[str] = field(default_factory=list)  # every name left in the inbox directory
    intact: bool = False
    error: str | None = None  # the sender's error, if the push failed
    qos_sender: dict | None = None
    qos_receiver: dict | None = None

    def metrics(self) -> dict[str, Any]:
        return {"goodput_Bps": round(self.goodput_Bps, 1), "efficiency": self.efficiency,
                "seconds": round(self.seconds, 3), "intact": self.intact, "qos_a": self.qos_sender,
                "qos_b": self.qos_receiver}


def push_file(sender: irsock.Interface, receiver: irsock.Interface, nbytes: int, *, timeout: float = 60.0,
              seed: int = 0, during: Any = None) -> PushOutcome:
    """``sender`` pushes ``nbytes`` of random data to an OBEX inbox on ``receiver``; the inbox is checked.

    ``during(progress_bytes)`` is called as the body goes out (to block the beam or unplug mid-transfer).
    """
    with tempfile.TemporaryDirectory(prefix="irsock-rig-") as work:
        inbox = Path(work) / "inbox"
        inbox.mkdir()
        source = Path(work) / f"rig-{nbytes}.bin"
        content = random.Random(seed or nbytes).randbytes(nbytes)
        source.write_bytes(content)
        outcome = PushOutcome(nbytes, 0.0, 0.0, None)
        with Inbox(obex_listener(receiver), inbox) as receiving:
            try:
                with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
                    sock.settimeout(timeout)
                    connect_obex(sock, receiver.address)
                    outcome.qos_sender, outcome.qos_receiver = bench.qos_dict(sender), bench.qos_dict(receiver)
                    with open(os.devnull, "w") as quiet:
                        summary = push_files(sock, [source], rate=line_rate(sender), out=quiet, tty=False,
                                             on_progress=_once(during) if during else None)
                    outcome.seconds, outcome.goodput_Bps = summary.seconds, summary.rate
                    outcome.efficiency = None if summary.efficiency is None else round(summary.efficiency, 4)
            except Exception as exc:  # noqa: BLE001 - socket and OBEX errors after a broken link are outcomes here
                outcome.error = f"{type(exc).__name__}: {exc}"
            stored = receiving.wait(timeout)
        outcome.stored = stored
        outcome.inbox_files = sorted(p.name for p in inbox.iterdir())
        digest = hashlib.sha256(content).digest()
        outcome.intact = bool(stored) and all(hashlib.sha256(f.path.read_bytes()).digest() == digest for f in stored
                                              if f.path.exists())
        return outcome


def _once(action: Any) -> Any:
    """``action(sent)`` until it returns True once; then nothing."""
    done = threading.Event()

    def watch(sent: int) -> None:
        if not done.is_set() and action(sent):
            done.set()

    return watch
