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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Personality:
    """A kind of virtual device: the stack it runs, the nickname and hints it announces."""

    stack: str | Callable[[Any], Any]
    nickname: str
    hints: int
    summary: str = ""


_PERSONALITIES: dict[str, Personality] = {}


def register_personality(name: str, stack: str | Callable[[Any], Any], *, nickname: str, hints: int,
                         summary: str = "") -> None:
    """Make ``name`` usable in ``devices=`` lists (the layers above register theirs: phone, ...)."""
    _PERSONALITIES[name] = Personality(stack, nickname, hints, summary)


def personalities() -> dict[str, Personality]:
    return dict(_PERSONALITIES)


def parse_devices(text: str) -> int | list[str]:
    """``"2"`` -> 2 plain devices; ``"phone,echo"`` -> those personalities (ValueError names the known ones)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in _PERSONALITIES]
    if unknown or not names:
        known = ", ".join(sorted(_PERSONALITIES)) or "none registered (import irsock)"
        raise ValueError(f"unknown device kind {', '.join(unknown) or repr(text)}: a number or a list of {known}")
    return names


def spawn_devices(medium: str, count: int | list[str], *, prefix: str = "virtual", seed: int = 0,
                  hints: int = 0x8404, stack: str | Callable[[Any], Any] | None = None) -> list[LinkRuntime]:
    """Start ``count`` plain virtual devices (or one per personality named) on ``medium``; they stop with
    :func:`stop_devices`."""
    kinds: list[tuple[str, int, Callable[[Any], Any] | None]] = []
    if isinstance(count, int):
        factory = _resolve(stack or _default_stack)
        kinds = [(f"{prefix}-{index + 1}", hints, factory) for index in range(count)]
    else:
        seen: dict[str, int] = {}
        for name in count:
            personality = _PERSONALITIES[name]
            seen[name] = seen.get(name, 0) + 1
            nickname = personality.nickname + (f" {seen[name]}" if seen[name] > 1 else "")
            kinds.append((nickname, personality.hints, _resolve(personality.stack)))
    rng = random.Random(f"{medium}/{seed}")
    started = []
    for nickname, device_hints, factory in kinds:
        device_rng = random.Random(rng.getrandbits(64))
        runtime = LinkRuntime(f"irsim://{medium}", dongle="plain", nickname=nickname, hints=device_hints,
                              rng=device_rng, stack=factory, address=device_address(medium, nickname, seed))
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
