"""mkdocs hook: the site's home page is the README.

``docs/index.md`` holds a marker line; this hook puts the README in its place, with the README's links
into ``docs/`` made relative to the site (``docs/sockets.md`` -> ``sockets.md``). Links are validated
after this, so a broken README link fails ``mkdocs build --strict`` like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- README -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != "index.md" or MARKER not in markdown:
        return markdown
    readme = README.read_text(encoding="utf-8")
    readme = re.sub(r"\]\(docs/", "](", readme)
    return markdown.replace(MARKER, readme)
