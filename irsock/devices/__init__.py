"""Emulated devices: what a virtual device on an ``irsim://`` medium runs inside its stack.

Each personality is a stack factory (a Station in, the stack that drives it out) with the nickname and hint
bits the device announces. ``irsim://M?devices=phone`` or ``irda emulate --devices phone`` place one; a
number (``devices=2``) places that many of the plain echo device. The registry lives in
:mod:`irlap.emulator.virtual` (the link layer cannot import us); :func:`register_all` fills it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Personality:
    name: str
    stack: str  # "module:function" taking a Station
    nickname: str
    hints: int
    summary: str


PERSONALITIES = (
    Personality("echo", "irsock.stack:virtual_device_stack", "virtual", 0x8404,
                "a computer with a TinyTP echo service (IAS Echo and IrDA:IrCOMM)"),
    Personality("phone", "irsock.devices.phone:phone_stack", "irsock phone", 0x9025,
                "a mobile phone: IrCOMM 9-wire with an AT command set (identity, phonebook, clock), an OBEX inbox "
                "and IrMC objects (telecom/pb.vcf)"),
    Personality("dive", "irsock.devices.dive:dive_stack", "Aladin Smart Com", 0x0100,
                "a Uwatec Smart Com dive computer: TinyTP on LSAP 1, its command set and a log of three dives"),
    Personality("printer", "irsock.devices.printer:printer_stack", "irsock printer", 0x0800,
                "an IrLPT printer: raw IrLMP on LSAP 3 (IAS IrLPT), each job kept"),
)


def register_all() -> None:
    """Make every personality known to the emulator (called when irsock is imported)."""
    from irlap.emulator import virtual

    for personality in PERSONALITIES:
        virtual.register_personality(personality.name, personality.stack, nickname=personality.nickname,
                                     hints=personality.hints, summary=personality.summary)
