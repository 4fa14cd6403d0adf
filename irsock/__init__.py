"""irsock: a userspace IrDA stack with a Winsock-style socket API."""

__version__ = "0.1.0"


def _register_virtual_devices() -> None:
    """Virtual devices on emulated media run our full stack (resolved lazily, no import cost here)."""
    from irlap.emulator import virtual

    virtual.set_default_stack("irsock.stack:virtual_device_stack")


_register_virtual_devices()
