"""Benchmark: a TinyTP stream between two interfaces on an unpaced emulated medium; one JSON object.

    python3 benchmarks/stream.py [--bytes 4000000]

``irsim://M?pace=0`` gives the line no time, so this measures the stack itself: the engine threads, the
socket layer's hand-offs and the protocol's turnarounds (IrLAP window, TinyTP credit). ``cpu_share`` is the
whole process (both stacks, the emulator and the two application threads) as a fraction of one core over
the transfer: near 1.0 means the figure is bounded by CPU, well below it means by waiting.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import irsock
from irsock.net import constants as C


def stream(nbytes: int) -> dict:
    name = f"stream-{uuid.uuid4().hex[:8]}"
    sender = irsock.attach(f"irsim://{name}?pace=0", nickname="sender")
    receiver = irsock.attach(f"irsim://{name}?pace=0", nickname="receiver")
    try:
        listener = receiver.socket(C.AF_IRDA, C.SOCK_STREAM)
        listener.bind(("Bench",))
        listener.listen()
        received = 0
        done = threading.Event()

        def sink() -> None:
            nonlocal received
            conn, _peer = listener.accept()
            with conn:
                while data := conn.recv(65536):
                    received += len(data)
            done.set()

        threading.Thread(target=sink, daemon=True).start()
        payload = bytes(range(256)) * 256
        with sender.socket(C.AF_IRDA, C.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect((receiver.address, "Bench"))
            started, cpu = time.monotonic(), time.process_time()
            sent = 0
            while sent < nbytes:
                sock.sendall(payload)
                sent += len(payload)
        done.wait(120)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        listener.close()
        return {"scenario": "TinyTP stream, irsim pace=0", "bytes": sent, "received": received,
                "seconds": round(seconds, 3), "mb_per_s": round(received / seconds / 1e6, 3),
                "cpu_share": round(cpu / seconds, 2)}
    finally:
        sender.close()
        receiver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=4_000_000)
    args = parser.parse_args()
    print(json.dumps(stream(args.bytes)))


if __name__ == "__main__":
    main()
