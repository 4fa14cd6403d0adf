#!/usr/bin/env python3
"""Download the dives of a Uwatec Smart dive computer through ``irsock.socket``, the way libdivecomputer's IrDA
transport and Uwatec Smart driver do it (behaviour read from its public source, no code taken):

1. ``getsockopt(SOL_IRLMP, IRLMP_ENUMDEVICES)`` up to 5 times, 1 s apart, until a device answers whose
   nickname is one of the Smart family's (case ignored);
2. ``connect((address, "LSAP-SEL1"))``: TinyTP straight to LSAP 1, no IAS lookup;
3. the two handshakes (``1B`` -> ``01``, ``1C 10 27 00 00`` -> ``01``), model ``10``, serial ``14``, clock ``1A``;
4. ``C6`` + the fingerprint (the newest dive already downloaded) + ``10 27 00 00``: how many bytes are new;
   ``C4`` + the same: that length + 4, then the dives, read in chunks as they come.

    python3 examples/uwatec_download.py                     # the emulator with an emulated Smart Com
    python3 examples/uwatec_download.py --port /dev/ttyUSB0 --dongle tekram --out dives.bin
    python3 examples/uwatec_download.py --fingerprint 1642982400 --json   # only dives after that one
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time

import irsock

NAMES = ("aladin smart com", "aladin smart pro", "aladin smart tec", "aladin smart z", "uwatec aladin",
         "uwatec galileo", "uwatec galileo sol")
MAGIC = bytes.fromhex("a5a55a5a")


class DownloadError(Exception):
    pass


def find_device(sock) -> irsock.IrdaDevice:
    for attempt in range(5):
        devices = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)[:16]
        for device in devices:
            if device.name.lower() in NAMES:
                return device
        if attempt < 4:
            time.sleep(1)
    raise DownloadError("no Uwatec Smart dive computer answered discovery (is its infrared port on?)")


class Connection:
    """The socket and what was read past the last answer (answers are read in chunks of at least 32 bytes)."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.pending = bytearray()

    def receive(self, size: int) -> bytes:
        while len(self.pending) < size:
            chunk = self.sock.recv(max(32, size - len(self.pending)))
            if not chunk:
                raise DownloadError(f"the computer closed the connection after {len(self.pending)} of {size} bytes")
            self.pending += chunk
        answer = bytes(self.pending[:size])
        del self.pending[:size]
        return answer

    def command(self, request: bytes, answer_size: int) -> bytes:
        self.sock.sendall(request)
        return self.receive(answer_size)


def split_dives(data: bytes) -> list[bytes]:
    """The dives in a C4 answer, oldest first: each starts with the magic and says its length."""
    dives = []
    offset = 0
    while offset < len(data):
        if data[offset:offset + 4] != MAGIC or offset + 12 > len(data):
            raise DownloadError(f"no dive header at offset {offset}")
        length = struct.unpack_from("<I", data, offset + 4)[0]
        if length < 12 or offset + length > len(data):
            raise DownloadError(f"a dive at offset {offset} says {length} bytes, {len(data) - offset} remain")
        dives.append(data[offset:offset + length])
        offset += length
    return dives


def download(sock, fingerprint: int = 0) -> dict:
    device = find_device(sock)
    sock.connect((device.address, "LSAP-SEL1"))
    link = Connection(sock)
    if link.command(b"\x1b", 1) != b"\x01" or link.command(bytes.fromhex("1c10270000"), 1) != b"\x01":
        raise DownloadError("the computer did not accept the handshake")
    model = link.command(b"\x10", 1)[0]
    serial = struct.unpack("<I", link.command(b"\x14", 4))[0]
    clock = struct.unpack("<I", link.command(b"\x1a", 4))[0]
    parameters = struct.pack("<I", fingerprint) + bytes.fromhex("10270000")
    size = struct.unpack("<I", link.command(b"\xc6" + parameters, 4))[0]
    data = b""
    if size:
        total = struct.unpack("<I", link.command(b"\xc4" + parameters, 4))[0]
        if total != size + 4:
            raise DownloadError(f"the computer announced {size} bytes, then {total - 4}")
        data = link.receive(size)
    dives = split_dives(data)
    return {"device": {"address": device.address, "name": device.name}, "model": model, "serial": serial,
            "clock": clock, "bytes": len(data), "data": data,
            "dives": [{"timestamp": struct.unpack_from("<I", d, 8)[0], "length": len(d),
                       "sha256": hashlib.sha256(d).hexdigest()} for d in dives]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", default=f"irsim://dive-{os.getpid()}?devices=dive",
                        help="serial port or pyserial URL (default: the emulator with an emulated Smart Com)")
    parser.add_argument("--dongle", default="plain")
    parser.add_argument("--fingerprint", type=int, default=0, help="timestamp of the newest dive already read")
    parser.add_argument("--out", help="write the dive data to this file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        with irsock.attach(args.port, dongle=args.dongle, nickname="divelog") as iface, \
                iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.settimeout(5)  # the host's timeout per answer
            result = download(sock, args.fingerprint)
    except (DownloadError, OSError) as exc:
        print(f"uwatec_download: {exc}", file=sys.stderr)
        return 1
    data = result.pop("data")
    if args.out:
        with open(args.out, "wb") as out:
            out.write(data)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['device']['name']} (model 0x{result['model']:02x}, serial {result['serial']}): "
              f"{len(result['dives'])} new dive(s), {result['bytes']} bytes")
        for dive in result["dives"]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(946684800 + dive["timestamp"] / 2))
            print(f"  {when} UTC  {dive['length']} bytes  fingerprint {dive['timestamp']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
