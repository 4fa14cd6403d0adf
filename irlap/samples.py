"""A complete sample IrLAP session, built with the project's own frame classes.

Used for the README's demo (``examples/session.raw``) and as the input the tshark oracle decodes.
Timings follow the protocol: XIDs on a 90 ms slot timer, the peer answering in its slot, SNRM/UA,
then data at the negotiated speed, and a DISC.
"""

from __future__ import annotations

from dataclasses import dataclass

from irlap import frames as F
from irlap.qos import QosParams, mtt_xbofs
from irlap.sir import wrap

PRIMARY = 0x11111111
# The peer's address holds a 0x7D byte on purpose: SIR escaping shows up in the raw bytes (and tshark's
# SIR dissector only decodes frames that contain an escape).
SECONDARY = 0x227D2222
CONNECTION = 0x2A
SLOT_TIME = 0.09


@dataclass(frozen=True)
class SampleFrame:
    time: float
    outgoing: bool  # seen from the primary
    frame: F.Frame


def sample_session() -> list[SampleFrame]:
    """Discovery with 6 slots, connection with QoS, an IAS query over IrLMP, RR, DISC/UA."""
    primary_info = F.DiscoveryInfo.make("irsock", hints=0x8420)
    peer_info = F.DiscoveryInfo.make("Galileo", hints=0x8220)
    out: list[SampleFrame] = []
    t = 0.0
    for slot in range(6):
        out.append(SampleFrame(t, True, F.XIDCommand(source=PRIMARY, slots=6, slot=slot)))
        if slot == 2:
            out.append(SampleFrame(t + 0.02, False, F.XIDResponse(source=SECONDARY, dest=PRIMARY, slots=6,
                                                                   slot=slot, info=peer_info)))
        t += SLOT_TIME
    out.append(SampleFrame(t, True, F.XIDCommand(source=PRIMARY, slots=6, slot=F.XID_FINAL_SLOT,
                                                 info=primary_info)))
    t += 0.6  # media busy after discovery
    ours = QosParams.offer(max_baud=115200, max_data_size=2048, max_window=7, min_turnaround_us=1000)
    theirs = QosParams.offer(max_baud=57600, max_data_size=256, max_window=7, min_turnaround_us=10000,
                             max_link_disconnect_s=12)
    out.append(SampleFrame(t, True, F.SNRM(source=PRIMARY, dest=SECONDARY, new_address=CONNECTION, qos=ours)))
    out.append(SampleFrame(t + 0.04, False, F.UA(address=CONNECTION, source=SECONDARY, dest=PRIMARY,
                                                 qos=theirs)))
    t += 0.1
    ca = CONNECTION
    out.append(SampleFrame(t, True, F.RR(address=ca, nr=0)))
    out.append(SampleFrame(t + 0.01, False, F.RR(address=ca, command=False, nr=0)))
    t += 0.02
    # IrLMP on top: connect to the peer's IAS (LSAP 0), ask for its device name, get the answer
    iap_query = b"\x00\x10\x84" + bytes((6,)) + b"Device" + bytes((10,)) + b"DeviceName"
    iap_answer = b"\x10\x00\x84\x00\x00\x01\x00\x00\x03\x00" + bytes((7,)) + b"Galileo"
    out.append(SampleFrame(t, True, F.IFrame(address=ca, ns=0, nr=0, info=b"\x80\x10\x01\x00")))
    out.append(SampleFrame(t + 0.02, False, F.IFrame(address=ca, command=False, ns=0, nr=1,
                                                     info=b"\x90\x00\x81\x00")))
    out.append(SampleFrame(t + 0.04, True, F.IFrame(address=ca, ns=1, nr=1, info=iap_query)))
    out.append(SampleFrame(t + 0.06, False, F.IFrame(address=ca, command=False, ns=1, nr=2, info=iap_answer)))
    t += 0.05
    out.append(SampleFrame(t, True, F.RR(address=ca, nr=2)))
    out.append(SampleFrame(t + 0.01, False, F.RR(address=ca, command=False, nr=2)))
    t += 0.03
    out.append(SampleFrame(t, True, F.DISC(address=ca)))
    out.append(SampleFrame(t + 0.01, False, F.UA(address=ca)))
    return out


def sample_raw_line() -> bytes:
    """The session as bytes on the primary's serial line, with the noise a real line has.

    Both directions appear (a SIR receiver also hears the peer); some line noise comes before the
    first frame, and one frame is damaged (bad FCS) so the counters have something to count.
    """
    chunks = [b"\x00\x13\x37"]  # noise while the dongle powered up
    for index, sample in enumerate(sample_session()):
        wire = wrap(F.build(sample.frame), xbofs=mtt_xbofs(9600, 10000))
        if index == 3:  # a damaged copy of the fourth frame goes first, as if a retransmission fixed it
            damaged = bytearray(wire)
            damaged[-3] ^= 0x01
            chunks.append(bytes(damaged))
        chunks.append(wire)
    return b"".join(chunks)
