"""asyncio over irsock sockets: ``open_connection`` / ``start_server`` give asyncio streams on AF_IRDA (and AF_INET
through the same calls), ``discover`` is an async iterator of the devices in range, ``wait_device`` waits for one.

    reader, writer = await irsock.aio.open_connection(0x1234ABCD, "Echo", interface=iface)
    server = await irsock.aio.start_server(handle, "Echo", interface=iface)
    async for device in irsock.aio.discover(interface=iface): ...

How it runs without a thread per connection:

- **Reading**: every irsock socket has a real ``fileno()``. On AF_IRDA it is a flag (one end of a socketpair) that
  is readable while data, a connection or the end waits, so ``loop.add_reader`` does for it what it does for a TCP
  socket, and the non-blocking ``recv``/``accept`` then take what is there.
- **Writing**: that flag says nothing about room to send (a socketpair end is always writable), so
  :class:`SocketTransport` asks the socket for a *writable callback* (``irsock.socket.set_writable_callback``):
  the stack calls it on its engine thread when TinyTP's send queue drained or the connection ended, and the
  transport hands that to the loop with ``call_soon_threadsafe`` (at most one pending hand-over). A socket that has
  no such callback (AF_INET, a daemon client's socket) has a ``fileno()`` that is a real socket: the transport uses
  ``loop.add_writer`` on it, as asyncio's own transports do. While it waits for room on a callback the transport
  also tries again after :data:`WRITE_RETRY` seconds, as a blocked ``send`` does (raw IrLMP sockets get no drain
  event; for TinyTP it only bounds the cost of a lost wake-up).
- **Flow control**: the transport buffers what ``send`` did not take, pauses its protocol above the high-water mark
  (64 KiB), so ``StreamWriter.drain()`` waits while TinyTP has no credit; below the transport the stack queues at
  most 8 KiB per connection. A ``StreamReader`` over its limit pauses reading: the socket is not read, TinyTP
  grants the peer no credit, and the peer's writer waits in its turn.
- **Blocking calls**: a data call on a non-blocking socket (``send``, ``recv``, ``accept``) is one round trip to
  the engine thread (microseconds to a millisecond), done on the loop. What waits for the air (``connect``, with its
  IAS lookup and IrLAP/IrLMP connection; discovery rounds) runs in the loop's default executor, as asyncio's own
  ``open_connection`` runs ``getaddrinfo``: a pool thread for the length of the call, never one per connection.

AF_INET and AF_INET6 go to asyncio's own ``open_connection``/``start_server``: the OS socket needs nothing of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket as _socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from irsock.net import constants as C
from irsock.net.errors import timed_out
from irsock.net.interface import Interface, default_interface
from irsock.net.sockets import socket as irsock_socket
from irsock.net.values import IrdaDevice, parse_address

#: While a transport waits for room on a writable callback it also tries again after this many seconds by itself.
WRITE_RETRY = 0.05
#: asyncio's default StreamReader limit (its buffer's high-water mark).
DEFAULT_LIMIT = 2**16
#: The transport's write buffer high-water mark: above it the protocol is paused (StreamWriter.drain waits).
WRITE_HIGH_WATER = 64 * 1024

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


# --- the transport ------------------------------------------------------------------------------------------
class SocketTransport(asyncio.Transport):
    """An asyncio stream transport over a connected irsock socket (any family, made non-blocking here).

    Reads when the socket's ``fileno()`` is readable; writes what ``send`` takes and buffers the rest until the
    socket's writable callback (or, without one, ``loop.add_writer`` on its ``fileno()``) says there is room.
    ``write_eof()`` is the socket's ``shutdown(SHUT_WR)`` once the buffer is out (on AF_IRDA: the peer reads
    EOF after the last byte, and IrLMP having no half-close, it can send no more); ``close()`` sends the buffer,
    then closes the socket gracefully; ``abort()`` drops the buffer and closes the socket at once.
    """

    max_size = 256 * 1024  # bytes read at most per readiness
    max_send = 64 * 1024  # bytes offered to send() at a time

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any, protocol: asyncio.BaseProtocol,
                 extra: dict[str, Any] | None = None, server: Server | None = None) -> None:
        super().__init__(extra)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._server = server
        self._buffer = bytearray()
        self._closing = False  # close() called: no more writes, the socket closes once the buffer is out
        self._eof = False  # write_eof() called
        self._conn_lost = 0
        self._reading = False  # our reader is installed on the fd
        self._at_eof = False  # recv() gave EOF: nothing more to read, ever
        self._read_paused = False
        self._protocol_paused = False
        self._high = WRITE_HIGH_WATER
        self._low = WRITE_HIGH_WATER // 4
        self._writer_fd = False  # waiting for room with loop.add_writer
        self._waiting = False  # the buffer waits for room (a wake-up from the stack is wanted)
        self._woken = False  # a wake-up from the stack is on its way to the loop
        self._retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self._extra.setdefault("socket", sock)
        for key, method in (("sockname", "getsockname"), ("peername", "getpeername")):
            try:
                self._extra.setdefault(key, getattr(sock, method)())
            except OSError:
                self._extra.setdefault(key, None)
        setter = getattr(sock, "set_writable_callback", None)
        self._callback = bool(callable(setter) and setter(self._stack_writable))
        if server is not None:
            server._attach(self)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<irsock.aio.SocketTransport fd={self._fd} {state} buffered={len(self._buffer)}>"

    # --- reading ---------------------------------------------------------------------------------------
    def _start_reading(self) -> None:
        if self._closing or self._conn_lost or self._read_paused or self._reading or self._at_eof:
            return
        self._loop.add_reader(self._fd, self._read_ready)
        self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        try:
            data = self._sock.recv(self.max_size)
        except (BlockingIOError, InterruptedError):
            return  # the flag was stale: the next event sets it again
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - the protocol hears of it through connection_lost
            self._fatal_error(exc, "read error on the socket")
            return
        if not data:
            self._at_eof = True
            self._stop_reading()  # EOF stays readable: without this the loop would spin on it
            try:
                keep_open = self._protocol.eof_received()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001
                self._fatal_error(exc, "eof_received() raised")
                return
            if not keep_open:
                self.close()
            return
        self._protocol.data_received(data)

    def pause_reading(self) -> None:
        if self._closing or self._read_paused:
            return
        self._read_paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        if self._closing or not self._read_paused:
            return
        self._read_paused = False
        self._start_reading()

    def is_reading(self) -> bool:
        return not self._read_paused and not self._closing

    # --- writing ---------------------------------------------------------------------------------------
    def _stack_writable(self) -> None:
        """On the stack's engine thread: room to send may have appeared. Hand it to the loop, once."""
        if not self._waiting or self._woken:
            return
        self._woken = True
        try:
            self._loop.call_soon_threadsafe(self._write_ready)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    def _send(self, data: bytes) -> int:
        """``send`` what it takes; 0 when it takes nothing now. Room appearing from here on wakes us."""
        self._waiting = True  # before the attempt: a wake-up between a full queue and our waiting is not lost
        self._woken = False
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("cannot call write() after write_eof()")
        if self._closing:
            return  # as asyncio's transports: data written after close() is dropped
        if not data:
            return
        if self._conn_lost:
            return
        if not self._buffer:
            data = bytes(data)
            try:
                sent = self._send(data[:self.max_send])
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001
                self._fatal_error(exc, "write error on the socket")
                return
            data = data[sent:]
            if not data:
                self._waiting = False
                return
            self._buffer.extend(data)
            self._wait_for_room()
        else:
            self._buffer.extend(data)
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _wait_for_room(self) -> None:
        if self._callback:
            if self._retry is None:
                self._retry = self._loop.call_later(WRITE_RETRY, self._retry_fired)
        elif not self._writer_fd:
            self._loop.add_writer(self._fd, self._write_ready)
            self._writer_fd = True

    def _stop_waiting(self) -> None:
        self._waiting = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._writer_fd:
            self._loop.remove_writer(self._fd)
            self._writer_fd = False

    def _retry_fired(self) -> None:
        self._retry = None
        self._write_ready()

    def _write_ready(self) -> None:
        if self._conn_lost or not self._buffer:
            return
        try:
            sent = self._send(bytes(self._buffer[:self.max_send]))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001
            self._fatal_error(exc, "write error on the socket")
            return
        if sent:
            del self._buffer[:sent]
            self._maybe_resume_protocol()
        if self._buffer:
            if self._callback and self._retry is None:
                self._retry = self._loop.call_later(WRITE_RETRY, self._retry_fired)
            return
        self._stop_waiting()
        if self._closing:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)
        elif self._eof:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(_socket.SHUT_WR)
        except OSError as exc:
            self._fatal_error(exc, "shutdown(SHUT_WR) failed")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = WRITE_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if len(self._buffer) <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001
            self._loop.call_exception_handler({"message": "protocol.pause_writing() failed", "exception": exc,
                                               "transport": self, "protocol": self._protocol})

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or len(self._buffer) > self._low:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001
            self._loop.call_exception_handler({"message": "protocol.resume_writing() failed", "exception": exc,
                                               "transport": self, "protocol": self._protocol})

    # --- the end ---------------------------------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._buffer:
            self._stop_waiting()
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):  # OSErrors (a reset, the interface down) are the connection's news
            self._loop.call_exception_handler({"message": f"irsock.aio: {message}", "exception": exc,
                                               "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        self._buffer.clear()
        self._stop_waiting()
        if not self._closing:
            self._closing = True
            self._stop_reading()
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._callback:
                self._sock.set_writable_callback(None)
            self._sock.close()
            self._protocol = None  # type: ignore[assignment]
            if self._server is not None:
                self._server._detach(self)
                self._server = None


# --- connecting ------------------------------------------------------------------------------------------------
def _family(service: Any, family: int | None) -> int:
    if family is not None:
        return family
    return C.AF_INET if isinstance(service, int) else C.AF_IRDA


def _streams(loop: asyncio.AbstractEventLoop, sock: Any, limit: int) -> tuple[asyncio.StreamReader,
                                                                            asyncio.StreamWriter]:
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = SocketTransport(loop, sock, protocol)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _blocking(loop: asyncio.AbstractEventLoop, sock: Any, call: Callable[[], Any]) -> Any:
    """``call()`` in the loop's default executor; cancelled, the socket is closed once the call has returned."""
    future = loop.run_in_executor(None, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        def finished(done: asyncio.Future) -> None:
            if not done.cancelled():
                done.exception()  # retrieved: nobody waits for it any more
            sock.close()

        future.add_done_callback(finished)
        raise


async def open_connection(address: Any = None, service: Any = None, *, family: int | None = None,
                          interface: Interface | None = None, timeout: float | None = None,
                          limit: int = DEFAULT_LIMIT, sock: Any = None,
                          **kwds: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and return ``(reader, writer)``, asyncio streams.

    - AF_IRDA (``service`` a string, or ``family=AF_IRDA``): ``address`` is a device address (an int, 4 bytes,
      ``"0x1234abcd"``), 0 for the one device in range offering ``service`` (Linux's auto-connect), or a nickname
      (found by discovery, see :func:`wait_device`); ``service`` an IAS class name or ``"LSAP-SELn"``;
      ``interface`` the stack to use (default: ``irsock.default_interface()``). Failures are the socket layer's
      OSErrors: ``ConnectionRefusedError`` (no such service), ``TimeoutError`` (no answer), ...
    - AF_INET/AF_INET6 (``service`` an int port, or an explicit family): asyncio's own ``open_connection(address,
      service, family=..., **kwds)``.
    - ``sock=``: an irsock socket that is already connected (any family, e.g. one from a daemon client).

    ``timeout`` bounds the connection (None: the stack's own limits: IAS's 8 s, IrLAP's connect timeout).
    """
    loop = asyncio.get_running_loop()
    if sock is not None:
        if isinstance(sock, _socket.socket):
            return await asyncio.open_connection(sock=sock, limit=limit, **kwds)
        return _streams(loop, sock, limit)
    family = _family(service, family)
    if family not in C.AF_IRDA_ALIASES:
        connecting = asyncio.open_connection(address, service, limit=limit, family=family, **kwds)
        return await (connecting if timeout is None else asyncio.wait_for(connecting, timeout))
    if kwds:
        raise TypeError(f"open_connection() got unexpected keyword arguments for AF_IRDA: {', '.join(kwds)}")
    if not isinstance(service, str) or not service:
        raise ValueError("AF_IRDA connects to a service: an IAS class name or 'LSAP-SELn'")
    if isinstance(address, str) and parse_address(address) is None:
        found = await wait_device(address, interface=interface, timeout=10.0 if timeout is None else timeout)
        address = found.address
    sock = irsock_socket(family, C.SOCK_STREAM, interface=interface)
    try:
        sock.settimeout(timeout)
        await _blocking(loop, sock, lambda: sock.connect((address, service)))
        return _streams(loop, sock, limit)
    except asyncio.CancelledError:
        raise
    except BaseException:
        sock.close()
        raise


# --- serving ------------------------------------------------------------------------------------------------
class Server(asyncio.AbstractServer):
    """What :func:`start_server` returns for AF_IRDA: the listening sockets, accepting on the loop.

    Like ``asyncio.Server``: ``close()`` stops accepting and closes the listening sockets (connections already
    accepted go on), ``wait_closed()`` waits for that and for the connections to end, ``serve_forever()``,
    ``async with``; ``sockets`` are the listening irsock sockets (``getsockname()`` gives address and service).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[Any],
                 protocol_factory: Callable[[], asyncio.BaseProtocol], backlog: int) -> None:
        self._loop = loop
        self._sockets: list[Any] | None = sockets
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._serving = False
        self._transports: set[SocketTransport] = set()
        self._waiters: list[asyncio.Future] = []
        self._serving_forever: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"<irsock.aio.Server sockets={self.sockets!r}>"

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._sockets or ())

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start_serving()

    def _start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._accept_ready, sock)

    def _accept_ready(self, listener: Any) -> None:
        for _ in range(self._backlog):
            try:
                child, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # the listener failed (its interface went down): it accepts nothing more
                self._loop.remove_reader(listener.fileno())
                self._loop.call_exception_handler({"message": f"irsock.aio: {listener!r} stopped accepting",
                                                   "exception": exc, "socket": listener})
                return
            SocketTransport(self._loop, child, self._protocol_factory(), server=self)

    def _attach(self, transport: SocketTransport) -> None:
        self._transports.add(transport)

    def _detach(self, transport: SocketTransport) -> None:
        self._transports.discard(transport)
        self._wake()

    def _wake(self) -> None:
        if self._sockets is None and not self._transports:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters = []

    def close(self) -> None:
        sockets, self._sockets = self._sockets, None
        if sockets is None:
            return
        for sock in sockets:
            if self._serving:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._serving = False
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
            self._serving_forever = None
        self._wake()

    def close_clients(self) -> None:
        for transport in list(self._transports):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._transports):
            transport.abort()

    async def wait_closed(self) -> None:
        if self._sockets is None and not self._transports:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def start_server(client_connected_cb: Handler, service: Any = None, *, family: int | None = None,
                       host: str | None = "127.0.0.1", interface: Interface | None = None, backlog: int = 5,
                       limit: int = DEFAULT_LIMIT, sock: Any = None, start_serving: bool = True,
                       **kwds: Any) -> Server | asyncio.AbstractServer:
    """Serve ``service``: ``client_connected_cb(reader, writer)`` (a coroutine or a plain function) runs for
    every connection, as with ``asyncio.start_server``.

    - AF_IRDA (``service`` a string, or ``family=AF_IRDA``): binds ``service`` (registered in our IAS under that
      class; ``"LSAP-SELn"`` takes that LSAP and registers nothing) on ``interface`` and listens; accepts on the
      loop (the listener's ``fileno()`` flag), no thread. Returns a :class:`Server`. ``EADDRINUSE`` when the name
      is taken.
    - AF_INET/AF_INET6 (``service`` an int port): asyncio's own ``start_server(cb, host, service, ...)``; ``host``
      is 127.0.0.1 unless given (None: every address), as ``irda receive --tcp-listen``.
    - ``sock=``: an irsock socket already bound and listening.
    """
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=limit, loop=loop), client_connected_cb,
                                            loop=loop)

    if sock is None:
        family = _family(service, family)
        if family not in C.AF_IRDA_ALIASES:
            return await asyncio.start_server(client_connected_cb, host, service, family=family, backlog=backlog,
                                              limit=limit, start_serving=start_serving, **kwds)
        if kwds:
            raise TypeError(f"start_server() got unexpected keyword arguments for AF_IRDA: {', '.join(kwds)}")
        if not isinstance(service, str) or not service:
            raise ValueError("an AF_IRDA server binds a service: an IAS class name or 'LSAP-SELn'")
        sock = irsock_socket(family, C.SOCK_STREAM, interface=interface)
        try:
            sock.bind((service,))
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
    elif isinstance(sock, _socket.socket):
        return await asyncio.start_server(client_connected_cb, sock=sock, backlog=backlog, limit=limit,
                                          start_serving=start_serving, **kwds)
    server = Server(loop, [sock], factory, backlog)
    if start_serving:
        server._start_serving()
    return server


# --- discovery ---------------------------------------------------------------------------------------------
def _device(found: Any) -> IrdaDevice:
    """A station's DiscoveredDevice as the socket layer reports devices (IRLMP_ENUMDEVICES)."""
    hints = found.hints.ljust(2, b"\0")
    charset = found.info.charset if found.info else 0
    return IrdaDevice(found.address, found.nickname, hints[0], hints[1] if hints[0] & 0x80 else 0, charset)


def _matcher(target: Any) -> Callable[[IrdaDevice], bool]:
    if target is None:
        return lambda _device: True
    if callable(target):
        return target
    if isinstance(target, int):
        return lambda device: device.address == target
    address = parse_address(str(target))
    return lambda device: device.name == target or (address is not None and device.address == address)


async def discover(*, interface: Interface | None = None, rounds: int | None = 1, slots: int = 6,
                   stop: Callable[[IrdaDevice], bool] | None = None) -> AsyncIterator[IrdaDevice]:
    """The devices in range, each once, as they answer discovery (an async iterator of ``IrdaDevice``).

    ``rounds`` discovery rounds of ``slots`` slots (None: round after round until the caller stops iterating;
    bound it with ``asyncio.timeout``). A device is yielded in the slot it answers in; at the end of a round the
    devices of the discovery log not yielded yet follow (seen by a round someone else ran; a round cannot run
    while a connection holds the link, and then the log is what there is). ``stop(device)`` ends a round early
    once it returns True for a device (the slots left are not run); it is called on the stack's engine thread, in
    the slot, so it must be quick (an exception counts as False). Each round runs in the loop's default executor:
    the loop itself never waits for the air.
    """
    loop = asyncio.get_running_loop()
    iface = interface if interface is not None else default_interface()
    queue: asyncio.Queue = asyncio.Queue()
    seen: set[int] = set()
    live = "stop_when" in inspect.signature(iface.discover).parameters

    def answered(found: Any) -> bool:  # on the engine thread, in the slot the device answered in
        device = _device(found)
        try:
            loop.call_soon_threadsafe(queue.put_nowait, device)
        except RuntimeError:
            pass  # the loop is gone
        try:
            return bool(stop is not None and stop(device))
        except Exception:  # noqa: BLE001 - the caller's function must not break the engine's discovery round
            return False

    def one_round() -> list[IrdaDevice]:
        if live:
            return [_device(found) for found in iface.discover(slots=slots, stop_when=answered)]
        with iface.socket(C.AF_IRDA, C.SOCK_STREAM) as probe:  # an interface without the slot hook
            return list(probe.getsockopt(C.SOL_IRLMP, C.IRLMP_ENUMDEVICES))

    done = 0
    while rounds is None or done < rounds:
        running = loop.run_in_executor(None, one_round)  # left to end by itself if the caller stops early
        while True:
            getter = asyncio.ensure_future(queue.get())
            try:
                finished, _pending = await asyncio.wait({getter, running}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if getter not in finished:
                break
            device = getter.result()
            if device.address not in seen:
                seen.add(device.address)
                yield device
        while not queue.empty():  # answers handed over just before the round's end
            device = queue.get_nowait()
            if device.address not in seen:
                seen.add(device.address)
                yield device
        for device in running.result():
            if device.address not in seen:
                seen.add(device.address)
                yield device
        done += 1


async def wait_device(target: Any = None, *, interface: Interface | None = None, timeout: float = 10.0,
                      slots: int = 6) -> IrdaDevice:
    """The first device that answers discovery and matches ``target``: a nickname, an address (int or
    ``"0x1234abcd"``), a function of an ``IrdaDevice``, or None for any device. Rounds run until then, each ending
    in the slot the device answered in. ``TimeoutError`` after ``timeout`` seconds, saying what was seen."""
    matches = _matcher(target)
    seen: list[IrdaDevice] = []

    async def look() -> IrdaDevice:
        async with contextlib.aclosing(discover(interface=interface, rounds=None, slots=slots, stop=matches)) as found:
            async for device in found:
                if matches(device):
                    return device
                seen.append(device)
        raise AssertionError("unreachable: discover(rounds=None) never ends by itself")

    try:
        return await asyncio.wait_for(look(), timeout)
    except asyncio.TimeoutError:
        listing = ", ".join(f"0x{d.address:08x} {d.name!r}" for d in seen) or "none"
        what = "no device" if target is None else f"no device matching {target!r}"
        raise timed_out(f"{what} answered discovery within {timeout:g} s (devices seen: {listing})") from None


__all__ = ["DEFAULT_LIMIT", "WRITE_RETRY", "Server", "SocketTransport", "discover", "open_connection",
           "start_server", "wait_device"]
