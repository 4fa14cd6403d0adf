"""UART framing at bit level: what a receiving UART makes of bytes sent at another speed.

A byte on an asynchronous line is a start bit (0), eight data bits LSB first and a stop bit (1);
the line idles at 1. A receiver waits for a falling edge, then samples the middle of each bit at
*its own* bit time. Sent and received at the same speed this is the identity; at another speed
the receiver sees the garbage and framing errors real hardware shows. Built with bitstring.
"""

from __future__ import annotations

from bitstring import BitArray

_FRAME_CACHE: dict[int, str] = {}


def _frame_bits(byte: int) -> str:
    cached = _FRAME_CACHE.get(byte)
    if cached is None:
        data = format(byte, "08b")[::-1]  # LSB first
        cached = _FRAME_CACHE[byte] = "0" + data + "1"
        return cached
    return cached


def line_bits(data: bytes) -> BitArray:
    """The line levels of ``data`` sent back to back (one bit per bit time)."""
    return BitArray(bin="".join(_frame_bits(b) for b in data)) if data else BitArray()


def resample(data: bytes, tx_baud: int, rx_baud: int, idle_after: int = 10) -> tuple[bytes, int]:
    """Bytes a UART at ``rx_baud`` receives from ``data`` sent at ``tx_baud``, and its framing errors.

    Bytes whose stop bit is sampled low are framing errors; like most UART drivers we still deliver
    them (the caller counts them). Identity when the speeds are equal.
    """
    if tx_baud == rx_baud or not data:
        return bytes(data), 0
    bits = line_bits(data) + BitArray(bin="1" * idle_after)
    ratio = tx_baud / rx_baud  # tx bit times per rx bit time
    total = len(bits)
    out = bytearray()
    errors = 0
    position = 0.0  # in tx bit times
    while True:
        found = bits.find("0b0", start=int(position)) if position < total else None
        if isinstance(found, tuple):  # bitstring 4 returns (pos,) or ()
            found = found[0] if found else None
        if found is None:
            break
        edge = found
        samples = []
        for index in range(10):
            at = int(edge + (index + 0.5) * ratio)
            samples.append(bits[at] if at < total else True)
        value = sum(1 << i for i, bit in enumerate(samples[1:9]) if bit)
        if not samples[9]:
            errors += 1
        out.append(value)
        # the receiver hunts for the next start after the stop sample (at least one line bit later)
        position = max(edge + 9.5 * ratio, edge + 1)
        if position >= total:
            break
    return bytes(out), errors
