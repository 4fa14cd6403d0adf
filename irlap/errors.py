"""The exception hierarchy of the link layer.

Everything the link layer raises on bad input derives from :class:`IrLAPError`, so callers (and the
CLI) can catch one type and print a message, never a construct or IndexError traceback.
"""


class IrLAPError(Exception):
    """Base class of every error raised by :mod:`irlap`."""


class FrameError(IrLAPError, ValueError):
    """A byte string is not a valid IrLAP frame (too short, bad field, trailing garbage...)."""


class QosError(IrLAPError, ValueError):
    """QoS parameters are malformed or cannot be negotiated (no common baud rate...)."""


class TraceError(IrLAPError):
    """A capture file is missing, truncated or not an IrDA capture."""
