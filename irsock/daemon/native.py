"""The ``LD_PRELOAD`` library that gives unmodified C programs ``AF_IRDA`` (``irda run``), and running one with it.

The library (``native/irsock_preload.c``, docs/native.md) turns ``socket(AF_IRDA, ...)`` into a connection to the
daemon (``irda serve``) and the socket calls on it into the daemon's requests. It is built when the package is
installed (``setup.py``: ``irsock/daemon/libirsock_preload.so``); when that could not happen (no compiler then, a
source checkout run without installing, a C source edited since), :func:`library_path` builds it on demand with the
C compiler into the user's cache (``~/.cache/irsock/``), named by the hash of its source so that an edited source
gets a new build and an old build is never used for it.

Linux only: the library wraps glibc's socket calls; macOS's dyld interposing would need a library of its own (and
System Integrity Protection drops ``DYLD_INSERT_LIBRARIES`` for system binaries), which is not written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

LIBRARY_NAME = "libirsock_preload.so"
SOURCE_NAME = "irsock_preload.c"
#: the flags setup.py builds with too: warnings on, position-independent, threads (the descriptor table's mutex)
CFLAGS = ("-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-pthread")
LIBS = ("-ldl",)

_PACKAGE_DIR = Path(__file__).resolve().parent


class NativeError(Exception):
    """Why ``irda run`` cannot run a program (no library and no compiler, no daemon, not Linux): one line to show."""


def source_path() -> Path | None:
    """The library's C source: the copy installed with the package, else the one in a source checkout."""
    for candidate in (_PACKAGE_DIR / SOURCE_NAME, _PACKAGE_DIR.parents[1] / "native" / SOURCE_NAME):
        if candidate.is_file():
            return candidate
    return None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/irsock``, else ``~/.cache/irsock``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "irsock"


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else ``cc``, else ``gcc`` (None when there is none)."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name:
            found = shutil.which(name.split()[0])
            if found:
                return found
    return None


def build(source: Path, target: Path, cc: str | None = None) -> Path:
    """Compile ``source`` into the shared library ``target`` (written under another name first, then renamed, so
    that a process starting meanwhile never loads half a file)."""
    cc = cc or compiler()
    if cc is None:
        raise NativeError(f"no C compiler to build the AF_IRDA library for irda run (from {source}): install one "
                          "(Debian/Ubuntu: apt install gcc; Fedora: dnf install gcc) or set CC")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run([cc, *CFLAGS, "-o", partial, str(source), *LIBS], capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise NativeError(f"building the AF_IRDA library with {cc} failed: "
                              f"{detail[-1] if detail else f'exit status {result.returncode}'}")
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target


def _digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def library_path(build_missing: bool = True) -> Path:
    """The preload library to use: ``$IRSOCK_PRELOAD`` when set, else the one installed with the package (unless
    its source is newer: an edited checkout), else the build in the cache for this source, built now if needed."""
    if sys.platform != "linux":
        raise NativeError(f"irda run needs Linux (LD_PRELOAD of a glibc program); {sys.platform} is not supported")
    override = os.environ.get("IRSOCK_PRELOAD")
    if override:
        if not Path(override).is_file():
            raise NativeError(f"IRSOCK_PRELOAD={override}: no such file")
        return Path(override)
    installed = _PACKAGE_DIR / LIBRARY_NAME
    source = source_path()
    if installed.is_file() and (source is None or installed.stat().st_mtime >= source.stat().st_mtime):
        return installed
    if source is None:
        raise NativeError(f"the AF_IRDA library is not installed ({installed}) and its source is missing: "
                          "reinstall irsock with a C compiler present")
    cached = cache_dir() / f"libirsock_preload-{_digest(source)}.so"
    if cached.is_file():
        return cached
    if not build_missing:
        raise NativeError(f"the AF_IRDA library is not built yet ({cached})")
    return build(source, cached)


def preload_environment(library: Path, socket_path: str | os.PathLike, base: dict[str, str] | None = None,
                        unnamed_service: str | None = None) -> dict[str, str]:
    """The environment for a program run with the library: it comes first in ``LD_PRELOAD`` (before what the
    user preloads already), ``IRSOCK_SOCKET`` names the daemon."""
    env = dict(os.environ if base is None else base)
    previous = env.get("LD_PRELOAD", "").strip()
    env["LD_PRELOAD"] = f"{library} {previous}".strip()
    env["IRSOCK_SOCKET"] = os.fspath(socket_path)
    if unnamed_service:
        env["IRSOCK_UNNAMED_SERVICE"] = unnamed_service
    return env


def run(argv: Sequence[str], socket_path: str | os.PathLike, unnamed_service: str | None = None) -> int:
    """Run ``argv`` with the library preloaded and talking to the daemon at ``socket_path``; its exit status
    (128 + N when signal N ended it, as a shell says). :class:`NativeError` before starting it when it cannot run."""
    from irsock.daemon import live_socket

    if not argv:
        raise NativeError("no program to run")
    if not live_socket(socket_path):
        state = "nobody answers there (a daemon that stopped)" if os.path.exists(socket_path) else "no such socket"
        raise NativeError(f"no irsock daemon at {os.fspath(socket_path)} ({state}): start one with "
                          "`irda serve --port PORT` (or `irda serve` for the built-in emulator), or give --socket")
    library = library_path()
    env = preload_environment(library, socket_path, unnamed_service=unnamed_service)
    try:
        child = subprocess.Popen(list(argv), env=env)
    except FileNotFoundError:
        raise NativeError(f"{argv[0]}: command not found") from None
    except PermissionError:
        raise NativeError(f"{argv[0]}: permission denied") from None
    except OSError as exc:
        raise NativeError(f"{argv[0]}: {exc.strerror or exc}") from None
    # The terminal's Ctrl-C reaches the program itself (same process group): we only wait for it to end. A
    # SIGTERM sent to us is passed on, so that stopping `irda run` stops the program. (Signal handlers can only be
    # set in the main thread; elsewhere we just wait.)
    main = threading.current_thread() is threading.main_thread()
    if main:
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous_term = signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    try:
        status = child.wait()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
    return 128 - status if status < 0 else status


__all__ = ["LIBRARY_NAME", "NativeError", "build", "cache_dir", "compiler", "library_path", "preload_environment",
           "run", "source_path"]
