"""griffe extension for the API reference: the Sphinx roles of our docstrings as cross-references.

The docstrings name other objects the Sphinx way (``:class:`~irlap.station.Station```,
``:meth:`recv```). mkdocstrings reads Markdown, where such a role shows as ``:class:Station``; this
extension turns each role into an optional cross-reference: a link when the target has a page in the
reference (``docs/api/``), plain code otherwise. A leading ``~`` shows the last component only, as in
Sphinx. Names are resolved in the scope of the docstring's object, like Sphinx does.
"""

from __future__ import annotations

import html
import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|mod|exc|obj|const):`(~?)([^`<>]+)`")


def _identifier(obj: griffe.Object, name: str) -> str:
    name = name.rstrip("()")
    try:
        return obj.resolve(name)
    except Exception:  # noqa: BLE001 - an unresolvable name stays as written (plain code)
        return name


def _convert(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        short, name = match.groups()
        title = name.rsplit(".", 1)[-1] if short else name
        identifier = _identifier(obj, name)
        return (f'<autoref identifier="{html.escape(identifier)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        pending = [pkg]
        while pending:
            obj = pending.pop()
            if obj.docstring is not None:
                obj.docstring.value = _convert(obj, obj.docstring.value)
            pending.extend(member for member in obj.members.values() if not member.is_alias)
