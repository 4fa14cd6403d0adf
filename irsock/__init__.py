"""irsock: a userspace IrDA stack with a Winsock-style socket API."""

__version__ = "0.1.0"
