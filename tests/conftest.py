"""Shared test helpers: external tools used as oracles skip locally but fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skips the test when missing, fails instead under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if in_ci():
            pytest.fail(message + "; CI must install it (.ci/run)")
        pytest.skip(message)
    return path


@pytest.fixture
def tshark() -> str:
    return require_tool("tshark")
