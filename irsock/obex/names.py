"""Names: those that arrive over the air are hostile until reduced to a safe base name inside the inbox;
the OBEX Type a name implies, and the name an object without one gets from its Type."""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata
from pathlib import Path

DEFAULT_NAME = "received.bin"
MAX_NAME_BYTES = 200  # well under every file system's 255-byte limit, leaves room for " (123)"
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
             *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
             *(f"COM{c}" for c in "¹²³"), *(f"LPT{c}" for c in "¹²³")}
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029<>:"|?*\\/]')


def _strip_format(name: str) -> str:
    """``name`` without Unicode format characters (category Cf): the bidi overrides and isolates
    (U+202A-U+202E, U+2066-U+2069), the marks U+200E, U+200F, U+061C, zero-width characters, BOM, soft
    hyphen. They are invisible and can make ``invoice\u202etxt.exe`` display as ``invoiceexe.txt``."""
    return "".join(c for c in name if unicodedata.category(c) != "Cf")


def safe_name(untrusted: str, default: str = DEFAULT_NAME) -> str:
    """The base name of ``untrusted`` with everything dangerous removed.

    No directory part (either separator, drive letters, UNC), no ``.``/``..``, no control characters (C0,
    C1, line and paragraph separators: ``_``) or characters Windows forbids, no invisible format characters
    (bidi overrides and isolates, zero-width characters: removed, so that what is shown is what is stored),
    no reserved device names (``CON``, ``NUL.txt``, ``COM1``...), no leading
    dots (hidden files, ``..``) or trailing dots/spaces, at most :data:`MAX_NAME_BYTES` bytes of UTF-8
    with the extension kept. What is left empty becomes ``default``.
    """
    name = unicodedata.normalize("NFC", str(untrusted))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # the last path element, whatever the separator
    name = re.sub(r"^[A-Za-z]:", "", name)  # C:name (drive-relative)
    name = _UNSAFE_CHARS.sub("_", _strip_format(name))
    name = name.strip().lstrip(".").rstrip(". ")
    if name.split(".")[0].upper().rstrip() in _RESERVED:  # CON, nul.txt, COM1.tar.gz...
        name = "_" + name
    name = _cap(name)
    return name or default


def _cap(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 20:
        stem, dot, ext = name, "", ""
    room = MAX_NAME_BYTES - len((dot + ext).encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return cut + dot + ext


def numbered(name: str, counter: int) -> str:
    """``name`` itself for 0, else ``name (counter).ext``: how a taken name is made new, on disk or in a
    device's memory alike."""
    if counter == 0:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    return f"{stem} ({counter}){dot}{ext}"


def reserve_unique(directory: Path, name: str) -> Path:
    """Create an empty file ``name`` in ``directory`` (or ``name (1).ext``, ...) atomically; its path.

    O_EXCL makes the choice race free: a name another writer took in between is skipped, never overwritten.
    """
    for counter in range(0, 10000):
        path = directory / numbered(name, counter)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise OSError(f"no free name for {name!r} in {directory} after 10000 tries")


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (resolved) lies within ``root`` (resolved)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


#: the types IrDA-era phones and PDAs (IrMC) act on; mimetypes knows newer names for some of them
IRMC_TYPES = {".vcf": "text/x-vcard", ".vcs": "text/x-vcalendar", ".vnt": "text/x-vnote", ".vmg": "text/x-vmessage"}


def guess_type(name: str) -> str | None:
    """The OBEX Type for a file name: IrMC's types for contacts, events and notes, else the usual MIME type."""
    suffix = Path(name).suffix.lower()
    return IRMC_TYPES.get(suffix) or mimetypes.guess_type(name, strict=False)[0]


def name_for_type(mime: object) -> str:
    """The name for an object pushed without one (some phones send a business card so): by its Type."""
    if isinstance(mime, bytes):
        text = mime.rstrip(b"\0").decode("ascii", "replace").strip().lower()
        for suffix, irmc_type in IRMC_TYPES.items():
            if text == irmc_type:
                return f"received{suffix}"
        suffix = mimetypes.guess_extension(text, strict=False) if text else None
        if suffix:
            return f"received{suffix}"
    return DEFAULT_NAME
