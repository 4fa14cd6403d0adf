"""Interfaces: an IrDA stack brought up on a port (the ``irattach`` of irsock), shared by its sockets.

``irsock.attach(port, dongle=..., nickname=..., hints=...)`` starts a :class:`LinkRuntime` with the
full stack (IrLAP, IrLMP, IAS, TinyTP) and returns an :class:`Interface`. Sockets talk to the stack
only through ``interface.call`` (run on the engine thread); the engine hands events back through
:meth:`Interface._on_event`, which files them with the socket they belong to and wakes its waiters.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from irlap.errors import IrLAPError
from irlap.qos import QosParams
from irlap.runtime import LinkRuntime, PortFailed
from irlap.station import Discovered, DiscoveredDevice, DiscoveryIndication, TestResult
from irsock.errors import IrSockError
from irsock.lmp.stack import (
    ConnectionlessData,
    IasResult,
    LmpConnectConfirm,
    LmpConnectIndication,
    LmpData,
    LmpDisconnected,
)
from irsock.net.errors import IrSockNetDown
from irsock.stack import full_stack
from irsock.ttp import TtpConnected, TtpDisconnected, TtpReadable, TtpWritable

if TYPE_CHECKING:  # a trace writer is made by the caller: irlap.pcap is imported for a trace only
    from irlap.pcap import PcapWriter

KEPT_DEVICES = 64  # devices remembered as seen (as the station's discovery log): the oldest is forgotten first
KEPT_IAS_RESULTS = 16  # IAS answers not yet taken by the socket that asked

_interfaces: list[Interface] = []


def _keep(table: OrderedDict, key: Any, value: Any, limit: int) -> None:
    """``table[key] = value`` as the newest entry, forgetting the oldest beyond ``limit``."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
_lock = threading.Lock()


class Interface:
    """One IrDA stack on one port. Context manager; ``close()`` brings it down cleanly."""

    def __init__(self, port: str, *, dongle: str = "plain", nickname: str = "irsock", hints: int = 0x0400,
                 address: int | None = None, trace: PcapWriter | None = None, qos: QosParams | None = None) -> None:
        self.port = port
        self.nickname = nickname
        self.cond = threading.Condition()
        self.endpoints: dict[Any, Any] = {}  # conn id / ("listen", lsap) / ("dgram", pid) -> socket impl
        # what peers can fill is bounded: answers to our IAS queries (one a waiter gave up on stays until pushed
        # out), the devices ever seen (for "new device"), and the new ones not yet taken by IRLMP_WAITDEVICE
        self.ias_results: OrderedDict[int, IasResult] = OrderedDict()
        self.devices: OrderedDict[int, DiscoveredDevice] = OrderedDict()
        self.new_devices: deque[int] = deque(maxlen=KEPT_DEVICES)
        self.test_results: deque[TestResult] = deque(maxlen=64)  # TEST echoes, for ping
        self.failure: str | None = None
        self.discovery_rounds = 0
        self.last_round: Discovered | None = None  # our latest discovery round (``garbled``: answers may be lost)
        self.runtime = LinkRuntime(port, dongle=dongle, nickname=nickname, hints=hints, address=address,
                                   stack=full_stack, on_event=self._on_event, trace=trace,
                                   qos=qos)
        self.runtime.start()
        self.closed = False

    @property
    def address(self) -> int:
        return self.runtime.station.address  # fixed when the runtime starts

    def call(self, fn: Callable[[Any, float], Any], timeout: float | None = 10.0) -> Any:
        if self.closed:
            raise IrSockNetDown("the IrDA interface is closed (irsock.attach() brings one up)")
        if not self.runtime.running:  # the port failed (unplugged): every socket call says so, as an OSError
            failure = self.runtime.failure
            raise IrSockNetDown(f"the link on {self.runtime.url} is down" + (f": {failure}" if failure else ""))
        try:
            return self.runtime.call(fn, timeout)
        except IrLAPError:
            if self.runtime.running:
                raise
            failure = self.runtime.failure  # it failed while the call waited: the same ENETDOWN
            raise IrSockNetDown(f"the link on {self.runtime.url} is down"
                                + (f": {failure}" if failure else "")) from None

    # --- discovery --------------------------------------------------------------------------------
    def discover(self, slots: int = 6, timeout: float = 3.0, *,
                 stop_when: Callable[[DiscoveredDevice], bool] | None = None) -> list[DiscoveredDevice]:
        """One discovery round; returns the devices known afterwards (the log, newest first).

        ``stop_when(device)``, if given, ends the round as soon as a device it accepts has answered (the rest of
        the slots are not run: for a caller that looks for one known device). A round already under way (not
        ours) ends as it would.

        IrLAP discovers only while no link is up. A link that IrLMP keeps only for its idle time (no LSAP
        connection on it) is dropped first, at once; while a connection uses the link no round can run, and
        the log is returned as it is after ``timeout``.
        """
        def start(stack, now) -> str:
            state = stack.lmp.station.state.value
            if state in ("NDM", "REPLY"):
                stack.discover(slots, now, stop_when=stop_when)
                return "started"
            if state == "QUERY":
                return "started"  # a round is under way: its end will do
            return "wait" if stack.lmp.release_idle_link(now) else "busy"

        with self.cond:
            before = self.discovery_rounds
        deadline = time.monotonic() + timeout
        outcome = self.call(start)
        while outcome == "wait" and time.monotonic() < deadline and not self.failure:
            with self.cond:
                self.cond.wait(0.05)  # woken by the link's Disconnected event
            outcome = self.call(start)
        if outcome == "started":
            deadline = time.monotonic() + timeout
        with self.cond:
            while self.discovery_rounds == before and time.monotonic() < deadline and not self.failure:
                self.cond.wait(deadline - time.monotonic())
        return self.call(lambda stack, now: stack.lmp.discovery_log(now))

    # --- the engine side -----------------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """Runs on the engine thread: file the event with its socket and wake every waiter."""
        with self.cond:
            target = None
            match event:
                case TtpConnected(incoming=True):
                    target = self.endpoints.get(("listen", event.conn[0]))
                case TtpConnected() | TtpReadable() | TtpWritable() | TtpDisconnected():
                    target = self.endpoints.get(event.conn)
                case LmpConnectIndication(owner="raw"):
                    target = self.endpoints.get(("listen", event.local))
                case LmpConnectConfirm(owner="raw") | LmpData(owner="raw") | LmpDisconnected(owner="raw"):
                    target = self.endpoints.get((event.local, event.remote))
                case ConnectionlessData():
                    for key, endpoint in list(self.endpoints.items()):
                        if key[0] == "dgram" and key[1] in (event.pid, None):
                            endpoint.on_event(event)
                case IasResult():
                    _keep(self.ias_results, event.query, event, KEPT_IAS_RESULTS)
                case Discovered():
                    self.discovery_rounds += 1
                    self.last_round = event
                    for device in event.devices:
                        self._seen(device)
                case DiscoveryIndication():
                    self._seen(event.device)
                case TestResult():
                    self.test_results.append(event)
                case PortFailed():
                    self.failure = event.message
                    for endpoint in list(self.endpoints.values()):
                        endpoint.on_failure(event.message)
            if target is not None:
                target.on_event(event)
            self.cond.notify_all()

    def _seen(self, device: DiscoveredDevice) -> None:
        if device.address not in self.devices:
            self.new_devices.append(device.address)
        _keep(self.devices, device.address, device, KEPT_DEVICES)

    def register(self, key: Any, endpoint: Any) -> None:
        with self.cond:
            self.endpoints[key] = endpoint

    def unregister(self, key: Any) -> None:
        with self.cond:
            self.endpoints.pop(key, None)

    # --- sockets ------------------------------------------------------------------------------------
    #: The socket type :meth:`socket` makes. The socket layer sits above the interface and is set here by
    #: :mod:`irsock.net` when it is imported, so that this module never imports the layer above it.
    socket_type: ClassVar[Callable[..., Any] | None] = None

    def socket(self, family: int, type: int = 1, proto: int = 0, **options: Any):  # noqa: A002 - the API's names
        """A socket on this interface (``provider=`` and its options as for ``irsock.socket``)."""
        if self.socket_type is None:
            raise IrSockError("import irsock (or irsock.net) to make sockets")
        return self.socket_type(family, type, proto, interface=self, **options)

    # --- what the layers below own, asked for on their behalf ---------------------------------------------
    def peek(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(stack)`` on the calling thread, without waiting for the engine: for estimates that the next
        event refreshes (a socket's room to send), never for changes."""
        return fn(self.runtime.stack)

    def link_params(self) -> QosParams | None:
        """The QoS the link negotiated (baud, sizes, turnaround), None while no link is up."""
        return self.call(lambda stack, _now: stack.lmp.station.params)

    @property
    def hints(self) -> int:
        """The discovery hint bits we announce (first byte << 8 | second byte)."""
        return self.call(lambda stack, _now: stack.lmp.station.info.hint_value)

    def set_hints(self, hints: int) -> None:
        """Announce ``hints`` from the next discovery on (IRLMP_HINTS_SET)."""
        self.call(lambda stack, _now: stack.lmp.station.set_hints(hints))

    def send_test(self, address: int, payload: bytes) -> None:
        """Send an IrLAP TEST frame to ``address`` (no link needed); its echo arrives in :attr:`test_results`."""
        self.call(lambda stack, now: stack.lmp.station.send_test(address, payload, now))

    def test_sent_at(self) -> float | None:
        """When the last TEST frame actually left (the engine's clock), for round-trip times."""
        return self.call(lambda stack, _now: stack.lmp.station.test_sent_at)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with _lock:
            if self in _interfaces:
                _interfaces.remove(self)
        self._close_connections()
        self.runtime.close()
        with self.cond:
            self.failure = self.failure or "the interface was closed"
            for endpoint in list(self.endpoints.values()):
                endpoint.on_failure(self.failure)
            self.cond.notify_all()

    def _close_connections(self, stall: float = 5.0, limit: float = 120.0) -> None:
        """Close every LSAP connection the way its socket would (TinyTP data, then an IrLMP Disconnect),
        and wait until the link has delivered it all, so peers get every byte and an orderly end rather than
        a lost link. The wait lasts while the backlog shrinks: it gives up after ``stall`` seconds without
        progress (a peer that stopped taking data) or ``limit`` seconds in all."""
        if self.failure is not None:
            return

        def close_all(stack, now) -> None:
            for conn in list(stack.connections):
                stack.close(conn, now)
            for (local, remote), conn in list(stack.lmp.connections.items()):
                if conn.owner != "ttp":  # TinyTP's own close sends its queued data first
                    stack.lmp.disconnect(local, remote, now)

        def backlog(stack, now) -> int:
            """Work still to deliver (0 once everything is through, or when the link is gone)."""
            return stack.outstanding() if stack.lmp.link_up else 0

        try:
            self.runtime.call(close_all, 1.0)
            start = last_progress = time.monotonic()
            least = None
            pause = 0.002  # the last acknowledgement is usually a poll or two away: look again soon, then less often
            while True:
                left = self.runtime.call(backlog, 1.0)
                now = time.monotonic()
                if not left or now - last_progress > stall or now - start > limit:
                    return
                if least is None or left < least:
                    least, last_progress, pause = left, now, 0.002
                time.sleep(pause)
                pause = min(0.02, pause * 2)
        except Exception:  # noqa: BLE001 - closing must go on whatever state the stack is in
            return

    def __enter__(self) -> Interface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<irsock.Interface {self.port} 0x{self.address:08x} {self.nickname!r}>"


def attach(port: str, *, dongle: str = "plain", nickname: str = "irsock", hints: int = 0x0400,
           address: int | None = None, trace: PcapWriter | None = None, qos: QosParams | None = None) -> Interface:
    """Bring a stack up on ``port`` (any pyserial URL) and make it available to sockets.

    ``hints`` are the discovery hint bits (first byte << 8 | second byte, e.g. 0x8420 = Computer + OBEX);
    ``trace`` records every frame the interface sends and receives in a pcap file; ``qos`` replaces the
    default QoS offer (e.g. ``QosParams.offer(max_baud=9600)``), narrowed to what the dongle supports.
    """
    iface = Interface(port, dongle=dongle, nickname=nickname, hints=hints, address=address, trace=trace, qos=qos)
    with _lock:
        _interfaces.append(iface)
    return iface


def remember(iface: Any) -> None:
    """Count ``iface`` among the attached interfaces (one served by the daemon: :mod:`irsock.daemon.client`)."""
    with _lock:
        _interfaces.append(iface)


def forget(iface: Any) -> None:
    with _lock:
        if iface in _interfaces:
            _interfaces.remove(iface)


def interfaces() -> list[Interface]:
    with _lock:
        return list(_interfaces)


def default_interface() -> Interface:
    """The first attached interface, else one on ``$IRDA_PORT`` / ``$IRDA_DONGLE``."""
    with _lock:
        if _interfaces:
            return _interfaces[0]
    port = os.environ.get("IRDA_PORT")
    if not port:
        raise IrSockNetDown(
            "no IrDA interface: call irsock.attach('/dev/ttyUSB0', dongle='tekram') first, or set IRDA_PORT "
            "(and IRDA_DONGLE); for a try without hardware: irsock.attach('irsim://demo?devices=2')"
        )
    return attach(port, dongle=os.environ.get("IRDA_DONGLE", "plain"))
