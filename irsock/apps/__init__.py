"""What uses the socket API the way any program would: file transfer (``irda send``/``receive``), the
demo and the link benchmark. Apps import :mod:`irsock.net`, :mod:`irsock.obex` and below, never the cli."""
