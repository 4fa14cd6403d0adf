"""The hardware-in-the-loop rig suite.

A package so that ``hil_tests.report`` and ``hil_tests.procedures`` import from anywhere: pytest then puts
the repository root on ``sys.path`` (rootdir-based "prepend" import mode), so ``pytest hil_tests`` also works
outside the repository root, and ``python -m hil_tests.report`` runs the report CLI.
"""
