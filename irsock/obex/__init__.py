"""IrOBEX: client and server over any stream socket of the socket layer (TinyTP or TCP).

See docs/obex.md. Over IrDA a server registers the IAS classes in :data:`IAS_CLASSES`
(``IrDA:TinyTP:LsapSel``) and sets the OBEX hint; over TCP it listens on :data:`OBEX_TCP_PORT`.
"""

from irsock.obex.client import ObexClient, PushResult
from irsock.obex.names import safe_name
from irsock.obex.packets import FBS_UUID, ObexError, ObexResponseError
from irsock.obex.server import ObexServer, ReceivedFile

OBEX_TCP_PORT = 650
IAS_CLASSES = ("OBEX", "OBEX:IrXfer")
OBEX_HINT = 0x0020  # second hint byte, bit 5

__all__ = ["ObexClient", "PushResult", "ObexServer", "ReceivedFile", "ObexError", "ObexResponseError",
           "safe_name", "FBS_UUID", "OBEX_TCP_PORT", "IAS_CLASSES", "OBEX_HINT"]
