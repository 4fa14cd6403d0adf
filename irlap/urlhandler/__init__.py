"""pyserial URL handlers of irsock (``irsim://``), found through ``serial.protocol_handler_packages``."""
