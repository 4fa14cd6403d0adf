"""Virtual devices: stations of our own stack living on an emulated medium.

Each one is a :class:`~irlap.runtime.LinkRuntime` on its own ``irsim://`` port, so it answers
discovery, TEST and connection requests exactly as a real peer would, in real time. A port alone
on a medium with ``devices=N`` therefore already has somebody to talk to.
"""

from __future__ import annotations

import random
import threading

from irlap.runtime import LinkRuntime

_DEVICES: dict[str, list[LinkRuntime]] = {}
_LOCK = threading.Lock()


def spawn_devices(medium: str, count: int, *, prefix: str = "virtual", seed: int = 0,
                  hints: int = 0x8420) -> list[LinkRuntime]:
    """Start ``count`` virtual devices on ``medium``; they stop with :func:`stop_devices`."""
    rng = random.Random(f"{medium}/{seed}")
    started = []
    for index in range(count):
        device_rng = random.Random(rng.getrandbits(64))
        runtime = LinkRuntime(f"irsim://{medium}", dongle="plain", nickname=f"{prefix}-{index + 1}",
                              hints=hints, rng=device_rng)
        runtime.start()
        started.append(runtime)
    with _LOCK:
        _DEVICES.setdefault(medium, []).extend(started)
    return started


def devices_on(medium: str) -> list[LinkRuntime]:
    with _LOCK:
        return list(_DEVICES.get(medium, []))


def stop_devices(medium: str) -> None:
    with _LOCK:
        devices = _DEVICES.pop(medium, [])
    for runtime in devices:
        runtime.close(disconnect=False, timeout=0.5)
