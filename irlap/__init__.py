"""irlap: the IrDA link layer of irsock (SIR framing, IrLAP frames, QoS, traces)."""

from irlap.errors import FrameError, IrLAPError, QosError, TraceError

__all__ = ["IrLAPError", "FrameError", "QosError", "TraceError"]
