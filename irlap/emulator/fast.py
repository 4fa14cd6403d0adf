"""The driver of the emulator's ``fir`` test dongle: SIR, MIR and FIR through ``irsim://M?dongle=fir``.

The ``fir`` model (:class:`irlap.emulator.models.FastModel`) is a controller whose host does the framing: up to
115200 bit/s a plain SIR adapter, at 576000, 1152000 and 4000000 bit/s a link that carries the MIR or FIR line
bytes the runtime builds (:mod:`irlap.framing`). Its driver is the plain one with those speeds declared: the
speed is the port's. It exists so that the whole stack runs at MIR and FIR in real time on the emulated medium
(``irda bench --max-baud 4000000``, the rig's speed sweep); no serial adapter does this, since a UART cannot
send MIR or FIR. It is registered under the ``irsock.dongles`` entry-point group (pyproject.toml), the way a
third-party driver is.
"""

from __future__ import annotations

from irlap.dongles.builtin import Plain
from irlap.emulator.models import FastModel


class FastIr(Plain):
    """Host-framed SIR/MIR/FIR controller of the emulator (``irsim://...?dongle=fir`` only)."""

    name = "fir"
    description = "emulated host-framed SIR/MIR/FIR controller (irsim://...?dongle=fir only)"
    speeds = FastModel.SPEEDS
