"""Virtual devices: stations of our own stack living on an emulated medium.

Each one is a :class:`~irlap.runtime.LinkRuntime` on its own ``irsim://`` port, so it answers
discovery, TEST and connection requests exactly as a real peer would, in real time. A port alone
on a medium with ``devices=N`` therefore already has somebody to talk to.
"""

from __future__ import annotations

import hashlib
import importlib
import random
import threading
from collections.abc import Callable
from typing import Any

from irlap.runtime import LinkRuntime

_DEVICES: dict[str, list[LinkRuntime]] = {}
_LOCK = threading.Lock()
# The stack virtual devices run above their station: set by the layers above (irsock registers its
# full IrLMP/IAS/TinyTP device), so the dependency arrow keeps pointing from irsock to irlap.
_default_stack: str | Callable[[Any], Any] | None = None


def set_default_stack(factory: str | Callable[[Any], Any] | None) -> None:
    """``"module:function"`` or a callable taking a Station and returning the stack to drive."""
    global _default_stack
    _default_stack = factory


def _resolve(factory: str | Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        return getattr(importlib.import_module(module), name)
    return factory


def spawn_devices(medium: str, count: int, *, prefix: str = "virtual", seed: int = 0,
                  hints: int = 0x8404, stack: str | Callable[[Any], Any] | None = None) -> list[LinkRuntime]:
    """Start ``count`` virtual devices on ``medium``; they stop with :func:`stop_devices`."""
    factory = _resolve(stack or _default_stack)
    rng = random.Random(f"{medium}/{seed}")
    started = []
    for index in range(count):
        device_rng = random.Random(rng.getrandbits(64))
        nickname = f"{prefix}-{index + 1}"
        runtime = LinkRuntime(f"irsim://{medium}", dongle="plain", nickname=nickname, hints=hints, rng=device_rng,
                              stack=factory, address=device_address(medium, nickname, seed))
        runtime.start()
        started.append(runtime)
    with _LOCK:
        _DEVICES.setdefault(medium, []).extend(started)
    return started


def device_address(medium: str, nickname: str, seed: int = 0) -> int:
    """The address of the virtual device ``nickname`` on ``medium``: derived from both (and a non-zero seed),
    so it is the same in every run and the examples in the docs can name it."""
    key = f"{medium}/{nickname}" + (f"/{seed}" if seed else "")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 0xFFFFFFFE + 1


def devices_on(medium: str) -> list[LinkRuntime]:
    with _LOCK:
        return list(_DEVICES.get(medium, []))


def stop_devices(medium: str) -> None:
    with _LOCK:
        devices = _DEVICES.pop(medium, [])
    for runtime in devices:
        runtime.close(disconnect=False, timeout=0.5)
