"""The real-time emulated infrared medium: dongles on a shared, half-duplex beam.

Every port opened on ``irsim://NAME`` becomes an :class:`Endpoint`: a host UART (the speed the
program sets), a dongle model (what the DTR/RTS lines and control bytes did to it) and a place on
the medium ``NAME``. Bytes the program writes become light at the dongle's infrared speed once
they would have left the UART (paced at the UART's speed); every other endpoint on the medium
hears the light, through its own dongle and UART. The medium models:

* pacing: a write of n bytes occupies the sender for n x 10 / baud seconds;
* half duplex: an endpoint hears nothing while it sends;
* collisions: overlapping light from two endpoints reaches everybody as garbage;
* speed mismatch at any step (host UART vs dongle, dongle vs dongle) by bit-level resampling
  (:mod:`irlap.emulator.uart`), so it produces the garbage and framing errors hardware shows;
* silence from a dongle that is powered down, in reset, switching or in command mode;
* seeded faults: bit errors and blocked-beam windows (outages, in seconds since the medium was made).

Bursts are delivered when they end (the whole write at once), like the simulator's frames.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from irlap.emulator.models import DongleModel, make_model
from irlap.emulator.uart import resample
from irlap.sim import flip_bits


@dataclass
class MediumOptions:
    ber: float = 0.0
    seed: int = 0
    outages: list[tuple[float, float]] = field(default_factory=list)
    #: time a byte takes, as a fraction of the real line time: 1 = the line rate, 0 = instant (for bulk tests)
    pace: float = 1.0


@dataclass
class _Burst:
    sender: Endpoint
    start: float
    end: float
    light: bytes  # bytes as light, at ``speed``
    speed: int


class Endpoint:
    """One emulated dongle on a medium, seen from its host UART."""

    def __init__(self, medium: Medium, model: DongleModel, name: str) -> None:
        self.medium = medium
        self.model = model
        self.name = name
        self.host_baud = 9600
        self.dtr = False
        self.rts = False
        self._rx = bytearray()
        self._rx_ready = threading.Condition(medium.lock)
        self.tx_busy_until = 0.0
        self.closed = False
        self._cancelled = False  # cancel_read: the read in progress (or the next one) returns at once
        self.framing_errors = 0

    # --- host side ----------------------------------------------------------------------------
    def set_lines(self, dtr: bool, rts: bool) -> None:
        with self.medium.lock:
            self.dtr, self.rts = dtr, rts
            self.model.lines(dtr, rts, self.medium.now())

    def set_baud(self, baud: int) -> None:
        with self.medium.lock:
            self.host_baud = baud

    def write(self, data: bytes) -> None:
        self.medium.send(self, bytes(data))

    def read(self, size: int, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.medium.lock:
            while not self._rx and not self.closed and not self._cancelled:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._rx_ready.wait(remaining)
            self._cancelled = False
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def cancel_read(self) -> None:
        """The read in progress returns now with what there is (pyserial's ``cancel_read``)."""
        with self.medium.lock:
            self._cancelled = True
            self._rx_ready.notify_all()

    def in_waiting(self) -> int:
        with self.medium.lock:
            return len(self._rx)

    def out_waiting(self) -> int:
        with self.medium.lock:
            remaining = self.tx_busy_until - self.medium.now()
            return max(0, int(remaining * self.host_baud / 10))

    def drain(self) -> None:
        """Block until everything written has left the UART."""
        while True:
            with self.medium.lock:
                remaining = self.tx_busy_until - self.medium.now()
            if remaining <= 0 or self.closed:
                return
            time.sleep(min(remaining, 0.05))

    def reset_input(self) -> None:
        with self.medium.lock:
            self._rx.clear()
            self.model.echo.clear()

    def close(self) -> None:
        with self.medium.lock:
            self.closed = True
            self._rx_ready.notify_all()
        self.medium.detach(self)

    # --- medium side ---------------------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        if data and not self.closed:
            self._rx += data
            self._rx_ready.notify_all()


class Medium:
    """A named beam shared by endpoints; one scheduler thread delivers bursts when they end."""

    def __init__(self, name: str, options: MediumOptions | None = None) -> None:
        self.name = name
        self.options = options or MediumOptions()
        self.rng = random.Random(self.options.seed)
        self.lock = threading.RLock()
        self.endpoints: list[Endpoint] = []
        self.epoch = time.monotonic()
        self._bursts: list[_Burst] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.collisions = 0
        self.on_empty: Callable[[Medium], None] | None = None

    def now(self) -> float:
        return time.monotonic() - self.epoch

    def attach(self, dongle: str, name: str | None = None) -> Endpoint:
        with self.lock:
            endpoint = Endpoint(self, make_model(dongle), name or f"{self.name}#{len(self.endpoints)}")
            self.endpoints.append(endpoint)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"irsim-{self.name}", daemon=True)
                self._thread.start()
            return endpoint

    def detach(self, endpoint: Endpoint) -> None:
        with self.lock:
            if endpoint in self.endpoints:
                self.endpoints.remove(endpoint)
            empty = not self.endpoints
        if empty and self.on_empty:
            self.on_empty(self)

    def stop(self) -> None:
        with self.lock:
            self._stopped = True
            self._wake.notify_all()

    # --- transmission ------------------------------------------------------------------------------
    def send(self, sender: Endpoint, data: bytes) -> None:
        with self.lock:
            now = self.now()
            start = max(now, sender.tx_busy_until)
            end = start + len(data) * 10 / sender.host_baud * self.options.pace
            sender.tx_busy_until = end
            light = sender.model.uart_write(data, sender.host_baud, start)
            speed = sender.model.ir_speed(start)
            if sender.model.echo:
                sender._deliver(bytes(sender.model.echo))
                sender.model.echo.clear()
            if not light or speed is None:
                return  # command bytes, or a dongle that makes no light
            if speed == 0:
                speed = sender.host_baud  # no dongle control: light at the UART speed
            elif speed != sender.host_baud:
                light, _errors = resample(light, sender.host_baud, speed)  # the dongle's UART misreads
            burst = _Burst(sender, start, end, light, speed)
            self._bursts.append(burst)
            self._schedule(end, lambda: self._deliver(burst))

    def _schedule(self, at: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (at, next(self._counter), fn))
        self._wake.notify_all()

    def _run(self) -> None:
        with self.lock:
            while not self._stopped:
                if not self._heap:
                    self._wake.wait(0.5)
                    continue
                at, _seq, fn = self._heap[0]
                delay = at - self.now()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                try:
                    fn()
                except Exception:  # noqa: BLE001 - one bad delivery must not kill the medium
                    continue

    def _in_outage(self, start: float, end: float) -> bool:
        return any(start < s + d and end > s for s, d in self.options.outages)

    def _deliver(self, burst: _Burst) -> None:
        self._bursts = [b for b in self._bursts if b.end > burst.start - 1.0]
        overlapping = [b for b in self._bursts if b is not burst and b.start < burst.end and b.end > burst.start]
        collided = any(b.sender is not burst.sender for b in overlapping)
        if collided:
            self.collisions += 1
        if self._in_outage(burst.start, burst.end):
            return
        for endpoint in self.endpoints:
            if endpoint is burst.sender or endpoint.closed:
                continue
            if any(b.sender is endpoint for b in overlapping):
                continue  # half duplex
            speed = endpoint.model.ir_speed(burst.end)
            if speed is None:
                continue  # this dongle is silent
            if speed == 0:
                speed = endpoint.host_baud
            if collided:
                data = self.rng.randbytes(max(1, len(burst.light) * speed // burst.speed))
            else:
                data = self._bit_errors(burst.light)
                if speed != burst.speed:
                    data, _ = resample(data, burst.speed, speed)
            if speed != endpoint.host_baud:
                data, errors = resample(data, speed, endpoint.host_baud)
                endpoint.framing_errors += errors
            endpoint._deliver(data)

    def _bit_errors(self, data: bytes) -> bytes:
        return flip_bits(data, self.options.ber, self.rng)


_MEDIA: dict[str, Medium] = {}
_MEDIA_LOCK = threading.Lock()


def get_medium(name: str, options: MediumOptions | None = None) -> tuple[Medium, bool]:
    """The medium called ``name`` (made on first use); the flag says whether it was just made."""
    with _MEDIA_LOCK:
        medium = _MEDIA.get(name)
        if medium is not None and not medium._stopped:
            return medium, False
        medium = Medium(name, options)
        _MEDIA[name] = medium
        return medium, True


def drop_medium(name: str) -> None:
    with _MEDIA_LOCK:
        medium = _MEDIA.pop(name, None)
    if medium is not None:
        medium.stop()
