"""The real-time runtime: one engine thread owns a Station and its serial port.

The engine feeds received bytes through the SIR unwrapper into the station, fires the station's
timers at their deadlines, writes its transmissions, and carries out speed changes in order (drain
the UART, switch the dongle, switch the UART). A reader thread only reads the port and hands the
bytes over; user threads talk to the engine through :meth:`LinkRuntime.call`, which runs a function
on the engine thread and returns its result. Nothing else touches the port or the station.

A port that fails (unplugged adapter, closed under us) becomes a :class:`PortFailed` event and a
clean stop, never a hung thread. ``close()`` is prompt: it disconnects if asked, powers the dongle
down and closes the port.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import serial

from irlap import frames as F
from irlap import framing
from irlap.dongles import Dongle, DongleError, get_dongle
from irlap.dongles.framed import FrameDongle, Received
from irlap.errors import IrLAPError
from irlap.port import PortError, flush_input, open_port
from irlap.qos import MIN_TURNAROUND_US, QosParams
from irlap.sir import Unwrapper
from irlap.station import Event, SetSpeed, Station, Transmit

if TYPE_CHECKING:  # a trace writer is made by the caller: irlap.pcap is imported for a trace only
    from irlap.pcap import PcapWriter

READ_MAX = 65536  # bytes the reader thread hands over at once (a 2 KB FIR frame is 4148 line bytes)


@dataclass(frozen=True)
class PortFailed:
    """The port failed; the runtime has stopped. ``message`` says what happened and what to try."""

    message: str


class LinkRuntime:
    """A station on a serial port, driven in real time (see the module docstring)."""

    def __init__(
        self,
        port: str | serial.SerialBase,
        *,
        dongle: str = "plain",
        address: int | None = None,
        nickname: str = "irsock",
        hints: int = 0x0400,
        qos: QosParams | None = None,
        rng: random.Random | None = None,
        trace: PcapWriter | None = None,
        accept_connections: bool = True,
        on_event: Callable[[Event | PortFailed], None] | None = None,
        stack: Callable[[Station], Any] | None = None,
    ) -> None:
        """``stack`` wraps the station in the layers above (e.g. IrLMP); they share its driver interface."""
        self.rng = rng or random.Random()
        self.url = port if isinstance(port, str) else getattr(port, "port", "port")
        self._port_arg = port
        self.dongle_name = dongle
        # a usb: port moves whole frames (irlap.dongles.framed); its driver follows the adapter's id unless named
        self.usb = _is_usb(port)
        self.driver_cls: type[Dongle] | None = None if self.usb and dongle in ("plain", "auto") else get_dongle(dongle)
        frame_level = self.driver_cls is not None and issubclass(self.driver_cls, FrameDongle)
        if self.driver_cls is not None and self.usb != frame_level:
            raise PortError(f"the {dongle} driver is for {'USB' if frame_level else 'serial'} adapters; {self.url} "
                            f"is a {'USB' if self.usb else 'serial'} port (irda dongles lists the drivers)")
        qos = qos or QosParams.offer()
        self._offer = qos  # a frame-level driver narrows it once the chip is open (it may tell its own limits)
        if self.driver_cls is not None and not frame_level:
            qos = qos.restrict_bauds(self.driver_cls.speeds)
            qos = _with_min_turnaround(qos, self.driver_cls.min_turnaround_us)
        address = address or self.rng.randrange(1, 0xFFFFFFFF)
        self.station = Station(address, qos=qos, rng=self.rng, accept_connections=accept_connections,
                               info=F.DiscoveryInfo.make(nickname, hints=hints))
        self.stack = stack(self.station) if stack is not None else self.station
        self.trace = trace
        self.on_event = on_event
        self.events: queue.Queue = queue.Queue()
        self.port: Any = None
        self.driver: Dongle | None = None
        self.frames: FrameDongle | None = None  # the driver, when it moves whole frames (USB)
        self.unwrapper = Unwrapper()
        self._rx_baud = 9600  # the speed self.unwrapper decodes
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._hold_reader = threading.Event()  # set: the reader must leave the port alone
        self._reader_held = threading.Event()  # set by the reader once it has stopped reading
        self._reader_released = threading.Event()  # set when a hold ends: the reader reads again at once
        self._line_free_at = 0.0  # time.monotonic() when what we wrote has left the line, at the port's speed
        self._engine: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self.failure: str | None = None
        self._epoch = time.monotonic()

    # --- life cycle --------------------------------------------------------------------------
    def start(self) -> LinkRuntime:
        """Open the port, bring the dongle up at 9600 and start the threads."""
        if self.usb:
            self._open_usb()
        else:
            if isinstance(self._port_arg, str):
                self.port = open_port(self._port_arg)
            else:
                self.port = self._port_arg
            assert self.driver_cls is not None
            self.driver = self.driver_cls(self.port)
            try:
                self.driver.open()
            except (DongleError, serial.SerialException, OSError) as exc:
                self.port.close()
                raise PortError(f"{self.url}: the {self.dongle_name} dongle did not come up: {exc}") from None
            flush_input(self.port, self.station.baud)  # start clean: nothing from before the open is decoded
        self._engine = threading.Thread(target=self._engine_loop, name=f"irlap-engine {self.url}", daemon=True)
        self._reader = threading.Thread(target=self._reader_loop, name=f"irlap-reader {self.url}", daemon=True)
        self._engine.start()
        self._reader.start()
        return self

    def _open_usb(self) -> None:
        """Open a usb: port (or take an opened UsbPort), choose its driver by id if none was named, bring it up."""
        if isinstance(self._port_arg, str):
            from irlap.dongles.usb import open_usb

            self.port, wanted = open_usb(self._port_arg)
        else:
            from irlap.dongles.usb import driver_for

            self.port = self._port_arg
            wanted = driver_for(self.port.vid, self.port.pid, self.port.interface_classes)
        if self.driver_cls is None:
            if wanted is None:
                self.port.close()
                raise PortError(f"{self.url}: no driver knows the adapter {self.port.vid:04x}:{self.port.pid:04x}; "
                                "name one with --dongle (irda dongles lists them)")
            self.dongle_name = wanted
            self.driver_cls = get_dongle(wanted)
        driver = self.driver_cls(self.port)
        assert isinstance(driver, FrameDongle)
        self.driver = self.frames = driver
        try:
            driver.open()
        except (DongleError, PortError, OSError) as exc:
            driver.close()
            self.port.close()
            raise PortError(f"{self.url}: the {self.dongle_name} adapter did not come up: {exc}") from None
        self.station.qos = driver.restrict_qos(self._offer)

    def close(self, disconnect: bool = True, timeout: float = 2.0) -> None:
        """Stop promptly; with ``disconnect`` a connected link is closed with DISC/RD first."""
        if self._engine is None or self._stop.is_set():
            self._finish()
            return
        if disconnect and self.failure is None:
            try:
                station = self.station  # the link itself, whatever stack sits on it
                if self.call(lambda _stack, now: station.connected, timeout=1.0):
                    self.call(lambda _stack, now: station.disconnect(now), timeout=1.0)
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline and self.call(lambda _s, now: station.connected, timeout=1.0):
                        time.sleep(0.002)  # DISC and its UA take a few ms at the link's speed
            except IrLAPError:
                pass
        self._stop.set()
        self._inbox.put(("stop", None))
        self._engine.join(timeout)
        self._finish()

    def _finish(self) -> None:
        self._stop.set()
        self._cancel_read()  # the reader leaves at once rather than at the end of its read timeout
        if self.driver is not None:
            try:
                self.driver.close()
            except Exception:  # noqa: BLE001 - the port may be gone; closing must not raise
                pass
        if self.port is not None:
            try:
                self.port.close()
            except Exception:  # noqa: BLE001
                pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(1.0)

    def __enter__(self) -> LinkRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._engine is not None and self._engine.is_alive()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The engine and reader threads (what a CPU measurement of the stack counts)."""
        return tuple(t for t in (self._engine, self._reader) if t is not None)

    def now(self) -> float:
        return time.monotonic() - self._epoch

    # --- the user side ----------------------------------------------------------------------------
    def call(self, fn: Callable[[Any, float], Any], timeout: float | None = 5.0) -> Any:
        """Run ``fn(stack, now)`` on the engine thread (the station, or the stack given) and return its result."""
        if not self.running:
            raise IrLAPError(f"the link on {self.url} is not running" + (f": {self.failure}" if self.failure else ""))
        future: Future = Future()
        self._inbox.put(("call", (fn, future)))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
            try:
                return future.result(step)
            except FutureTimeout:
                # an engine that stopped (the port failed) after this call was queued never answers it
                if not self.running and not future.done():
                    raise IrLAPError(f"the link on {self.url} is not running"
                                     + (f": {self.failure}" if self.failure else "")) from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise IrLAPError(f"the link engine on {self.url} did not answer within {timeout} s") from None

    def next_event(self, timeout: float | None = None) -> Event | PortFailed | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, kinds: tuple[type, ...], timeout: float) -> Event | PortFailed | None:
        """The next event of one of ``kinds`` (others are dropped) or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            event = self.next_event(remaining)
            if event is None:
                return None
            if isinstance(event, kinds) or isinstance(event, PortFailed):
                return event

    # --- threads ----------------------------------------------------------------------------------
    def _cancel_read(self) -> None:
        """Make a read in progress on the reader thread return now (pyserial's ``cancel_read``, where the port
        has it: POSIX ports and ``irsim://``); elsewhere the read ends at its timeout (50 ms)."""
        if self.frames is not None:
            self.frames.cancel_receive()
            return
        cancel = getattr(self.port, "cancel_read", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # noqa: BLE001 - a port that is gone has no read to cancel
                pass

    def _hold(self) -> None:
        """Keep the reader thread off the port (a dongle driver reads its echo): wait until it has stopped."""
        self._reader_released.clear()
        self._reader_held.clear()
        self._hold_reader.set()
        self._cancel_read()
        self._reader_held.wait(0.5)

    def _release(self) -> None:
        self._hold_reader.clear()
        self._reader_released.set()

    def _frame_reader_loop(self, driver: FrameDongle) -> None:
        while not self._stop.is_set():
            try:
                received = driver.receive(0.05)
            except (IrLAPError, OSError) as exc:
                if not self._stop.is_set():
                    self._inbox.put(("error", str(exc) if str(exc).startswith(self.url) else f"{self.url}: {exc}"))
                return
            except Exception as exc:  # noqa: BLE001 - whatever a backend raises, the link goes down with the reason
                if not self._stop.is_set():
                    self._inbox.put(("error", f"{self.url}: the USB adapter failed ({exc!r})"))
                return
            if received.frames or received.busy:
                self._inbox.put(("frames", received))

    def _reader_loop(self) -> None:
        if self.frames is not None:
            self._frame_reader_loop(self.frames)
            return
        port = self.port
        assert port is not None
        while not self._stop.is_set():
            if self._hold_reader.is_set():
                self._reader_held.set()
                self._reader_released.wait(0.05)
                continue
            try:
                waiting = port.in_waiting
                data = port.read(max(1, min(waiting, READ_MAX)))
                if data and len(data) < READ_MAX and (more := port.in_waiting):
                    # the read woke on the first byte of a burst (read(1) on an idle port): take the rest now,
                    # so that a frame reaches the engine in one hand-over, not as a byte and then the rest
                    data += port.read(min(more, READ_MAX - len(data)))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    self._inbox.put(("error", f"{self.url}: the port failed ({exc}); is the adapter unplugged?"))
                return
            if data:
                self._inbox.put(("bytes", data))

    def _engine_loop(self) -> None:
        station = self.stack
        try:
            while not self._stop.is_set():
                deadline = station.next_deadline()
                now = self.now()
                timeout = None if deadline is None else max(0.0, deadline - now)
                try:
                    kind, payload = self._inbox.get(timeout=0.5 if timeout is None else min(timeout, 0.5))
                except queue.Empty:
                    kind, payload = "tick", None
                now = self.now()
                if kind == "stop":
                    break
                if kind == "error":
                    self._fail(payload)
                    return
                if kind == "bytes":
                    station.sense(now)
                    for frame in self.unwrapper.feed(payload):
                        if self.trace is not None:
                            self.trace.write_frame(frame, outgoing=False, time=time.time())
                        station.receive(frame, now)
                elif kind == "frames":
                    received: Received = payload
                    station.sense(now)
                    for frame in received.frames:
                        if self.trace is not None:
                            self.trace.write_frame(frame, outgoing=False, time=time.time())
                        station.receive(frame, now)
                elif kind == "call":
                    fn, future = payload
                    try:
                        future.set_result(fn(station, now))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller
                        future.set_exception(exc)
                deadline = station.next_deadline()
                if deadline is not None and deadline <= self.now():
                    station.handle_timer(self.now())
                self._drain()
                if self.failure is not None:
                    return
        except (serial.SerialException, OSError) as exc:
            self._fail(f"{self.url}: the port failed ({exc}); is the adapter unplugged?")
        except (PortError, DongleError) as exc:  # a frame-level driver's port: its message says what happened
            self._fail(str(exc) if str(exc).startswith(self.url) else f"{self.url}: {exc}")

    def _drain(self) -> None:
        port = self.port
        assert port is not None and self.driver is not None
        for action in self.stack.take_output():
            if isinstance(action, Transmit) and self.frames is not None:
                if self.trace is not None:
                    self.trace.write_frame(action.frame, outgoing=True, time=time.time())
                self.frames.send_frame(action.frame, action.xbofs)
                start = max(time.monotonic(), self._line_free_at)
                self._line_free_at = start + self.frames.line_time(action.frame, action.xbofs)
            elif isinstance(action, SetSpeed) and self.frames is not None:
                pending = self._line_free_at - time.monotonic()
                if pending > 0:
                    time.sleep(pending)  # the chip sends what it holds at the old speed; its line time, then switch
                self.frames.set_speed(action.baud)
                self.station.turnaround_from_rx = self.frames.turnaround_from_rx
                if self.trace is not None:
                    self.trace.write_log(f"speed {action.baud} bit/s", time=time.time())
            elif isinstance(action, Transmit):
                if self.trace is not None:
                    self.trace.write_frame(action.frame, outgoing=True, time=time.time())
                port.write(action.wire)  # SIR-wrapped, or MIR/FIR line bytes above 115200 (a host-framed port)
                start = max(time.monotonic(), self._line_free_at)
                self._line_free_at = start + framing.line_seconds(len(action.wire), port.baudrate or 9600)
            elif isinstance(action, SetSpeed):
                port.flush()  # the UART must be empty before the dongle switches
                # flush() returns once the OS has handed the bytes on: a USB adapter's FIFO (or the PTY of
                # irda emulate) may still be sending them. The last frame at the old speed (a UA) must leave
                # whole, so wait for its line time; this is when the peer hears its end anyway.
                pending = self._line_free_at - time.monotonic()
                if pending > 0:
                    time.sleep(pending)
                # the driver may read the dongle's echo: keep the reader thread off the port meanwhile
                self._hold()
                try:
                    self.driver.set_speed(action.baud)
                except DongleError as exc:
                    self._release()
                    self._fail(f"{self.url}: {exc}")  # the wrong dongle type: nothing else will work
                    return
                self._release()
                self._new_speed(action.baud)
                if self.trace is not None:
                    self.trace.write_log(f"speed {action.baud} bit/s", time=time.time())
        for event in self.stack.take_events():
            self._publish(event)

    def _new_speed(self, baud: int) -> None:
        """Decode what arrives from now on with the framing of ``baud`` (SIR, MIR or FIR): a partial frame is
        forgotten; the counters stay while the framing does."""
        if framing.kind(baud) == framing.kind(self._rx_baud):
            self.unwrapper.reset()
        else:
            self.unwrapper = framing.unwrapper(baud)
        self._rx_baud = baud

    def _publish(self, event: Event | PortFailed) -> None:
        if self.on_event is None:
            self.events.put(event)  # with a callback the events are its own: a queue nobody reads would grow
            return
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a user callback must not stop the link
            pass

    def _fail(self, message: str) -> None:
        self.failure = message
        self._stop.set()
        self._publish(PortFailed(message))


def _is_usb(port: object) -> bool:
    """A usb: URL, or an opened USB port object (irlap.dongles.usb.UsbPort)."""
    if isinstance(port, str):
        return port.lower().startswith("usb:")
    return hasattr(port, "bulk_read") and hasattr(port, "interface_classes")


def _with_min_turnaround(qos: QosParams, needed_us: int) -> QosParams:
    """Our offer, asking for at least the dongle's minimum turnaround time."""
    from dataclasses import replace

    current = qos.value("min_turnaround")
    if current >= needed_us:
        return qos
    value = min((v for v in MIN_TURNAROUND_US if v >= needed_us), default=MIN_TURNAROUND_US[0])
    return replace(qos, min_turnaround=1 << MIN_TURNAROUND_US.index(value))
