#!/usr/bin/env python3
"""An asyncio client of an IrDA echo service with ``irsock.aio``: discovery as an async iterator, then several
connections to the device served by one event loop, each writing with ``drain()`` and reading its echo back.

    python3 examples/aio_echo.py                       # the emulator: a virtual echo device (service "Echo")
    python3 examples/aio_echo.py --connections 8 --size 200000 --json
    python3 examples/aio_echo.py --serve --port /dev/ttyUSB0 --dongle tekram   # be the echo service instead
    python3 examples/aio_echo.py --port /dev/ttyUSB1 --dongle tekram           # ... and talk to it from another

Without ``--port`` it runs on ``irsim://aio-echo?devices=1`` (unpaced: ``pace=0``), where a virtual device offers
``Echo``; with one, the device is the first that answers discovery (``--to NICKNAME`` picks one).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import time

import irsock
import irsock.aio


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve(iface: irsock.Interface, service: str) -> None:
    server = await irsock.aio.start_server(echo, service, interface=iface)
    print(f"echoing on {service!r} at 0x{iface.address:08x} ({iface.nickname}); Ctrl-C ends", flush=True)
    async with server:
        await server.serve_forever()


async def one(iface: irsock.Interface, address: int, service: str, number: int, size: int) -> dict:
    payload = random.Random(number).randbytes(size)
    reader, writer = await irsock.aio.open_connection(address, service, interface=iface, timeout=20)
    reading = asyncio.ensure_future(reader.readexactly(size))
    for start in range(0, size, 16384):
        writer.write(payload[start:start + 16384])
        await writer.drain()  # waits while TinyTP has no credit: the transport's buffer stays bounded
    echoed = await reading
    writer.close()
    await writer.wait_closed()
    return {"connection": number, "bytes": size, "echoed_ok": hashlib.sha256(echoed).digest() == hashlib.sha256(
        payload).digest()}


async def client(iface: irsock.Interface, args: argparse.Namespace) -> dict:
    found = []
    async for device in irsock.aio.discover(interface=iface, rounds=3):
        found.append(device)
        if not args.json:
            print(f"found 0x{device.address:08x} {device.name!r} ({', '.join(device.hint_words)})", flush=True)
        if args.to is None or device.name == args.to:
            break
    chosen = [d for d in found if args.to is None or d.name == args.to]
    if not chosen:
        raise SystemExit(f"aio_echo: no device{' named ' + repr(args.to) if args.to else ''} answered discovery")
    started = time.monotonic()
    results = await asyncio.gather(*(one(iface, chosen[0].address, args.service, n, args.size)
                                     for n in range(args.connections)))
    seconds = time.monotonic() - started
    total = sum(r["bytes"] for r in results)
    return {"device": f"0x{chosen[0].address:08x}", "name": chosen[0].name, "connections": results,
            "all_echoed": all(r["echoed_ok"] for r in results), "seconds": round(seconds, 3),
            "mb_per_s_each_way": round(total / seconds / 1e6, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", help="serial port of a dongle (default: the emulator with a virtual echo device)")
    parser.add_argument("--dongle", default="plain")
    parser.add_argument("--service", default="Echo", help="IAS class of the echo service (default Echo)")
    parser.add_argument("--to", help="the device's nickname (default: the first that answers)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--size", type=int, default=100_000, help="bytes per connection")
    parser.add_argument("--serve", action="store_true", help="offer the echo service instead of using one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.size < 1:
        parser.error("--connections and --size take positive numbers")
    port = args.port or "irsim://aio-echo?devices=1&pace=0"
    try:
        with irsock.attach(port, dongle=args.dongle, nickname="aio-echo") as iface:
            if args.serve:
                asyncio.run(serve(iface, args.service))
                return 0
            report = asyncio.run(client(iface, args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"aio_echo: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{len(report['connections'])} connections to {report['device']} {report['name']!r}: "
              f"{'every byte echoed' if report['all_echoed'] else 'ECHO MISMATCH'} in {report['seconds']} s "
              f"({report['mb_per_s_each_way']} MB/s each way)")
    return 0 if report["all_echoed"] else 1


if __name__ == "__main__":
    sys.exit(main())
