"""The real-time emulated infrared medium: dongles on a shared, half-duplex beam.

Every port opened on ``irsim://NAME`` becomes an :class:`Endpoint`: a host UART (the speed the
program sets), a dongle model (what the DTR/RTS lines and control bytes did to it) and a place on
the medium ``NAME``. Bytes the program writes become light at the dongle's infrared speed once
they would have left the UART (paced at the UART's speed); every other endpoint on the medium
hears the light, through its own dongle and UART. The medium models:

* pacing: a write of n bytes occupies the sender for n x 10 / baud seconds (a UART); at MIR and FIR speeds
  (the ``fir`` model, light endpoints) bytes are line bytes: :func:`irlap.framing.line_seconds`;
* half duplex: an endpoint hears nothing while it sends;
* collisions: overlapping light from two endpoints reaches everybody as garbage;
* speed mismatch at any step (host UART vs dongle, dongle vs dongle) by bit-level resampling
  (:mod:`irlap.emulator.uart`), so it produces the garbage and framing errors hardware shows;
* silence from a dongle that is powered down, in reset, switching or in command mode;
* seeded faults: bit errors and blocked-beam windows (outages, in seconds since the medium was made).
  Bit errors hit the line bytes with their framing (XBOFs and escapes, MIR flags and stuffed bits, FIR
  preamble and chips), so each frame's error rate follows its real length on the line.

Bursts are delivered when they end (the whole write at once), like the simulator's frames.

Besides the ports behind a host UART (:class:`Endpoint`, what ``irsim://`` opens), a device that puts light on
the medium itself (an emulated USB chip) attaches a :class:`LightEndpoint`: line bytes in and out at a speed,
and whether the medium is busy. Both kinds hear each other.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from irlap import framing
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
    sender: Endpoint | LightEndpoint
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
    def light_speed(self, now: float) -> int | None:
        """The speed this dongle receives light at now, None when it is silent."""
        speed = self.model.ir_speed(now)
        if speed == 0:
            return self.host_baud  # no dongle control: light at the UART speed
        return speed

    def hear(self, data: bytes, speed: int) -> None:
        """Light heard at ``speed``, through the dongle to the host UART."""
        if speed != self.host_baud:
            data, errors = _misread(data, speed, self.host_baud, self.medium.rng)
            self.framing_errors += errors
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if data and not self.closed:
            self._rx += data
            self._rx_ready.notify_all()


class LightEndpoint:
    """A device on the medium without a host UART (an emulated USB chip): line bytes in and out at a speed.

    ``send(wire)`` puts line bytes already encoded for :attr:`speed` (:func:`irlap.framing.wrap`) on the medium,
    paced at :func:`irlap.framing.line_seconds`; what the device hears arrives, when each burst ends, through
    ``on_light(bytes)`` (called on the medium's thread: it must not block) or, without a callback, in a queue
    :meth:`receive` empties. Heard bytes are what a receiver at *this* speed gets: bit errors, garbage after a
    collision or from a sender at another speed. :meth:`busy` is media busy (someone else's light now).
    """

    def __init__(self, medium: Medium, name: str, speed: int | None = 9600) -> None:
        self.medium = medium
        self.name = name
        self.speed = speed
        self.on_light: Callable[[bytes], None] | None = None
        self.tx_busy_until = 0.0
        self.closed = False
        self._heard: list[bytes] = []
        self._ready = threading.Condition(medium.lock)

    def set_speed(self, speed: int | None) -> None:
        """Send and receive at ``speed`` from now on; None: silent (powered down, in reset)."""
        if speed is not None:
            framing.kind(speed)  # ValueError for a speed without framing
        with self.medium.lock:
            self.speed = speed

    def send(self, wire: bytes) -> float:
        """Put ``wire`` on the medium after what this device sent before; returns when it has left (medium time).

        A silent device (speed None) sends nothing."""
        return self.medium.send_light(self, bytes(wire))

    def drained(self) -> bool:
        """True once everything sent has left."""
        with self.medium.lock:
            return self.tx_busy_until <= self.medium.now()

    def busy(self, now: float | None = None) -> bool:
        """Light from another device is on the medium (at ``now``, medium time, default the present)."""
        with self.medium.lock:
            at = self.medium.now() if now is None else now
            return any(b.sender is not self and b.start <= at < b.end for b in self.medium._bursts)

    def receive(self, timeout: float | None = 0.0) -> list[bytes]:
        """The bursts heard since the last call (without an ``on_light`` callback), waiting up to ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.medium.lock:
            while not self._heard and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._ready.wait(remaining)
            heard, self._heard = self._heard, []
            return heard

    def close(self) -> None:
        with self.medium.lock:
            self.closed = True
            self._ready.notify_all()
        self.medium.detach(self)

    # --- medium side ---------------------------------------------------------------------------
    def light_speed(self, now: float) -> int | None:
        return self.speed

    def hear(self, data: bytes, speed: int) -> None:
        if not data or self.closed:
            return
        if self.on_light is not None:
            self.on_light(data)
        else:
            self._heard.append(data)
            self._ready.notify_all()


def _misread(data: bytes, tx_speed: int, rx_speed: int, rng: random.Random | None = None) -> tuple[bytes, int]:
    """What a receiver at ``rx_speed`` makes of line bytes sent at ``tx_speed``: the bit-level UART model between
    two SIR speeds; garbage of the same duration when either side is MIR or FIR (another modulation)."""
    if tx_speed == rx_speed:
        return data, 0
    if tx_speed <= framing.SIR_MAX and rx_speed <= framing.SIR_MAX:
        return resample(data, tx_speed, rx_speed)
    seconds = framing.line_seconds(len(data), tx_speed)
    length = max(1, int(seconds * rx_speed / framing.bits_per_byte(rx_speed)))
    return (rng or random).randbytes(length), 0


class Medium:
    """A named beam shared by endpoints; one scheduler thread delivers bursts when they end."""

    def __init__(self, name: str, options: MediumOptions | None = None) -> None:
        self.name = name
        self.options = options or MediumOptions()
        self.rng = random.Random(self.options.seed)
        self.lock = threading.RLock()
        self.endpoints: list[Endpoint | LightEndpoint] = []
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
            self._add(endpoint)
            return endpoint

    def attach_light(self, name: str | None = None, speed: int | None = 9600) -> LightEndpoint:
        """A device that puts line bytes on the medium itself (see :class:`LightEndpoint`)."""
        with self.lock:
            endpoint = LightEndpoint(self, name or f"{self.name}#{len(self.endpoints)}", speed)
            self._add(endpoint)
            return endpoint

    def _add(self, endpoint: Endpoint | LightEndpoint) -> None:
        self.endpoints.append(endpoint)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"irsim-{self.name}", daemon=True)
            self._thread.start()

    def detach(self, endpoint: Endpoint | LightEndpoint) -> None:
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
    def send_light(self, sender: LightEndpoint, wire: bytes) -> float:
        """Line bytes from a :class:`LightEndpoint` at its speed, after what it sent before."""
        with self.lock:
            now = self.now()
            speed = sender.speed
            if speed is None or not wire or sender.closed:
                return max(now, sender.tx_busy_until)
            start = max(now, sender.tx_busy_until)
            end = start + framing.line_seconds(len(wire), speed) * self.options.pace
            sender.tx_busy_until = end
            burst = _Burst(sender, start, end, wire, speed)
            self._bursts.append(burst)
            self._schedule(end, lambda: self._deliver(burst))
            return end

    def send(self, sender: Endpoint, data: bytes) -> None:
        with self.lock:
            now = self.now()
            start = max(now, sender.tx_busy_until)
            end = start + sender.model.host_seconds(len(data), sender.host_baud) * self.options.pace
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
                light, _errors = _misread(light, sender.host_baud, speed, self.rng)  # the dongle's UART misreads
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
        for endpoint in list(self.endpoints):
            if endpoint is burst.sender or endpoint.closed:
                continue
            if any(b.sender is endpoint for b in overlapping):
                continue  # half duplex
            speed = endpoint.light_speed(burst.end)
            if speed is None:
                continue  # this dongle is silent
            if collided:
                data = self.rng.randbytes(max(1, len(burst.light) * speed // burst.speed))
            else:
                data = self._bit_errors(burst.light)
                if speed != burst.speed:
                    data, _ = _misread(data, burst.speed, speed, self.rng)
            endpoint.hear(data, speed)

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
