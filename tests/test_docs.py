"""The docs site (mkdocs.yml, docs/) builds with ``--strict``: a broken link or anchor, a page missing
from the nav or a docstring the API reference cannot read fails here. Skips without mkdocs, fails under
CI=true (the test extra installs it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[1]


def require_mkdocs() -> None:
    missing = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None
               or importlib.util.find_spec(name) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (python3 -m pip install -e '.[test]')"
        if in_ci():
            pytest.fail(message + "; the test extra must bring them")
        pytest.skip(message)


def test_site_builds_strict(tmp_path):
    require_mkdocs()
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    site = tmp_path / "site"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "userspace IrDA stack" in home  # the README is the home page
    assert 'href="sockets/"' in home  # with its docs/ links made relative to the site
    for page in ("irsock", "obex", "ttp", "lmp", "station", "qos", "sim"):
        assert (site / "api" / page / "index.html").is_file(), page
    assert 'id="irsock.attach"' in (site / "api" / "irsock" / "index.html").read_text(encoding="utf-8")
