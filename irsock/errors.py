"""The exception hierarchy of the layers above the link (IrLMP, IAS, TinyTP, sockets, OBEX)."""


class IrSockError(Exception):
    """Base class of every error raised by :mod:`irsock`."""
