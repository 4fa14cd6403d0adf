"""Simulated scenarios for the layers above the link (used by tests and benchmarks/ttp.py)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from irlap.frames import DiscoveryInfo
from irlap.qos import QosParams
from irlap.sim import Faults, Simulator
from irlap.station import Station
from irsock.lmp.stack import IrLMP
from irsock.ttp import TinyTP, TtpConnected, TtpDisconnected


@dataclass
class TtpReport:
    connections: int
    bytes_each: int
    intact: list[bool]
    delivered: list[int]
    finish_times: list[float]
    sim_seconds: float
    goodput_Bps: float
    line_rate_Bps: float
    efficiency: float
    max_sender_buffered: int
    max_receiver_buffered: int
    disconnects: list[str]

    def as_dict(self) -> dict:
        return {
            "connections": self.connections, "bytes_each": self.bytes_each, "intact": self.intact,
            "delivered": self.delivered, "finish_times": [round(t, 3) for t in self.finish_times],
            "sim_seconds": round(self.sim_seconds, 3), "goodput_Bps": round(self.goodput_Bps, 1),
            "line_rate_Bps": self.line_rate_Bps, "efficiency": round(self.efficiency, 4),
            "max_sender_buffered": self.max_sender_buffered, "max_receiver_buffered": self.max_receiver_buffered,
            "disconnects": self.disconnects,
        }


def make_stack(address: int, nickname: str, qos: QosParams, sim: Simulator) -> TinyTP:
    station = Station(address, qos=qos, rng=sim.station_rng(), info=DiscoveryInfo.make(nickname, hints=0x8404))
    return TinyTP(IrLMP(station))


def run_ttp_transfer(nbytes: int, *, connections: int = 1, baud: int = 115200, seed: int = 0,
                     faults: Faults | None = None, reader_bytes_per_s: float | None = None,
                     sar: bool = False, chunk: int = 4096) -> TtpReport:
    """``connections`` TinyTP streams, each moving ``nbytes`` from A to B at once over one IrLAP link.

    ``reader_bytes_per_s`` makes B's application read slowly (None: it reads everything at once).
    """
    sim = Simulator(seed, faults)
    qos = QosParams.offer(max_baud=baud)
    a_stack = make_stack(0xA0A0A0A0, "sender", qos, sim)
    b_stack = make_stack(0xB0B0B0B0, "receiver", qos, sim)
    a = sim.add(a_stack, "A")
    b = sim.add(b_stack, "B")
    lsap = b_stack.listen(max_sdu_size=0xFFFFFFFF if sar else 0)
    rng = random.Random(seed ^ 0xA5A5)
    payloads = [rng.randbytes(nbytes) for _ in range(connections)]
    offsets = [0] * connections
    conns: list = []
    received: dict = {}
    finish: dict = {}
    state = {"start": None, "max_tx": 0, "max_rx": 0, "disconnects": []}

    def feed(node) -> None:
        for index, conn_id in enumerate(conns):
            conn = a_stack.connections.get(conn_id)
            if conn is None or not conn.open:
                continue
            while offsets[index] < nbytes and a_stack.pending(conn_id) < chunk:
                piece = payloads[index][offsets[index]: offsets[index] + chunk]
                offsets[index] += len(piece)
                a_stack.send(conn_id, piece, sim.now)
            state["max_tx"] = max(state["max_tx"], a_stack.pending(conn_id))

    def on_a(node, event) -> None:
        if isinstance(event, TtpConnected) and state["start"] is None:
            state["start"] = sim.now
        elif isinstance(event, TtpDisconnected):
            state["disconnects"].append(f"A {event.conn}: {event.detail or event.reason.name}")

    def read_b(budget: int | None) -> None:
        """B's application reads up to ``budget`` bytes (all there is for None) from each connection."""
        for conn_id in list(b_stack.connections):
            data = b_stack.recv(conn_id, budget, sim.now)
            if data:
                received.setdefault(conn_id, bytearray()).extend(data)
                if len(received[conn_id]) >= nbytes and conn_id not in finish:
                    finish[conn_id] = sim.now
        b.pump()

    def drain_b() -> None:
        read_b(None)

    def on_b(node, event) -> None:
        if isinstance(event, TtpDisconnected):
            state["disconnects"].append(f"B {event.conn}: {event.detail or event.reason.name}")
        for conn in b_stack.connections.values():
            state["max_rx"] = max(state["max_rx"], sum(len(u[0]) for u in conn.rx_units))
        if reader_bytes_per_s is None:
            sim.at(sim.now, drain_b)

    a.after = feed
    a.on_event = on_a
    b.on_event = on_b
    for _ in range(connections):
        conns.append(a_stack.connect(0xB0B0B0B0, lsap, sim.now, max_sdu_size=0xFFFFFFFF if sar else 0))
    a.pump()

    if reader_bytes_per_s is not None:
        period = 0.1

        def slow_reader() -> None:
            read_b(int(reader_bytes_per_s * period))
            if len(finish) < connections:
                sim.at(sim.now + period, slow_reader)

        sim.at(0.1, slow_reader)

    limit = nbytes * connections * 10 / 2400 * 3 + 60
    if reader_bytes_per_s:
        limit += nbytes * connections / reader_bytes_per_s * 2
    sim.run(until=limit, stop=lambda: len(finish) == connections)
    start = state["start"] or 0.0
    ordered = sorted(received)
    results = [bytes(received.get(k, b"")) for k in ordered]
    intact = [hashlib.sha256(r).digest() == hashlib.sha256(p).digest() for r, p in
              zip(results + [b""] * (connections - len(results)), payloads, strict=False)]
    end = max(finish.values()) if finish else sim.now
    seconds = max(end - start, 1e-9)
    total = sum(len(r) for r in results)
    return TtpReport(connections, nbytes, intact, [len(r) for r in results],
                     [finish[k] - start for k in ordered if k in finish], seconds, total / seconds, baud / 10,
                     total / seconds / (baud / 10), state["max_tx"], state["max_rx"], state["disconnects"])
