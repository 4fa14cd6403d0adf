"""IrMC objects as infrared phones handed them out over OBEX: the phonebook as vCard 2.1 (``telecom/pb.vcf``),
its ``info.log``, the calendar (``telecom/cal.vcs``) and ``telecom/devinfo.txt``.

A sync tool connects with the Target ``IRMC-SYNC`` and GETs these by name; the first card of ``pb.vcf`` is the
owner's. Only text building here: which entries there are is the device's business (the emulated phone hands
in the same entries its AT phonebook reads, so both always agree).
"""

from __future__ import annotations

from collections.abc import Iterable

IRMC_TARGET = b"IRMC-SYNC"
PHONEBOOK = "telecom/pb.vcf"
PHONEBOOK_INFO = "telecom/pb/info.log"
CALENDAR = "telecom/cal.vcs"
DEVINFO = "telecom/devinfo.txt"
VCARD_TYPE = "text/x-vcard"
INFORMATION_EXCHANGE_LEVEL = "0x02"  # level 2, access: whole objects by name (no change logs, no sync)


def _escape(value: str) -> str:
    """A vCard 2.1 value: ``;`` and ``\\`` escaped (they separate the parts of N)."""
    return value.replace("\\", "\\\\").replace(";", "\\;")


def _property(name: str, value: str) -> str:
    """``NAME:value``, or quoted-printable UTF-8 when the value is not plain printable ASCII (vCard 2.1 has
    no other way to carry it, and a line break inside a value would end the property)."""
    if all(0x20 <= ord(c) < 0x7F for c in value) and not value.endswith(" "):
        return f"{name}:{value}"
    encoded = "".join(chr(b) if 0x21 <= b < 0x7F and b != 0x3D else f"={b:02X}" for b in value.encode("utf-8"))
    return f"{name};CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{encoded}"


def vcard(name: str, number: str) -> str:
    """One vCard 2.1 for a phonebook entry (a name and a number, what a GSM phonebook location holds)."""
    lines = ["BEGIN:VCARD", "VERSION:2.1", _property("N", _escape(name)), _property("TEL;PREF", number),
             "END:VCARD"]
    return "".join(line + "\r\n" for line in lines)


def phonebook(owner: tuple[str, str], entries: Iterable[tuple[str, str]]) -> bytes:
    """``telecom/pb.vcf``: the owner's card first (IrMC's rule), then one card per entry, in order."""
    return "".join(vcard(name, number) for name, number in [owner, *entries]).encode("utf-8")


def info_log(total: int, maximum: int) -> bytes:
    """``telecom/pb/info.log``: how many records there are and can be, and the exchange level offered."""
    return (f"Total-Records:{total}\r\nMaximum-Records:{maximum}\r\n"
            f"IEL:{INFORMATION_EXCHANGE_LEVEL}\r\n").encode("ascii")


def calendar() -> bytes:
    """``telecom/cal.vcs``: an empty vCalendar 1.0 (the emulated phone keeps no appointments)."""
    return b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\nEND:VCALENDAR\r\n"


def devinfo(manufacturer: str, model: str, serial: str) -> bytes:
    """``telecom/devinfo.txt``: who the device is and which object formats it sends (TX) and takes (RX)."""
    fields = [("MANU", manufacturer), ("MOD", model), ("SN", serial), ("IRMC-VERSION", "1.1"),
              ("PB-TYPE-TX", "VCARD2.1"), ("PB-TYPE-RX", "NONE"), ("CAL-TYPE-TX", "VCAL1.0"),
              ("CAL-TYPE-RX", "NONE"), ("MSG-TYPE-TX", "NONE"), ("MSG-TYPE-RX", "NONE"),
              ("NOTE-TYPE-TX", "NONE"), ("NOTE-TYPE-RX", "NONE")]
    return "".join(f"{key}:{value}\r\n" for key, value in fields).encode("latin-1", "replace")
