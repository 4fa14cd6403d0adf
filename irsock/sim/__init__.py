"""The protocol layers above the link (IrLMP, TinyTP) run on :mod:`irlap.sim`'s virtual clock.

Scenarios and soaks that drive the sans-IO layers directly, with no socket, thread or port: the
simulator of the link lives in ``irlap`` (it knows nothing above IrLAP), the runs that need IrLMP and
TinyTP on top of it live here, beside the layers they exercise.
"""
