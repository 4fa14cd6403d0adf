"""IrLMP (LSAP multiplexing, discovery service), IAS and their PDUs."""
