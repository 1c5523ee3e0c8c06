"""Where a key sits in a TOML file. ``tomllib`` returns plain dicts without line numbers, so a
study's error messages find the line of a key by scanning the text for table headers and
``key = value`` lines. The scan is deliberately simple: it knows headers, dotted and quoted keys,
and skips the inside of multi-line strings and arrays; keys inside inline tables map to the line
of the inline table's own key (the nearest known prefix)."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*(?P<key>[^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_PART = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*(?P<key>{_PART}(?:\s*\.\s*{_PART})*)\s*=")


def split_key(text: str) -> tuple[str, ...]:
    """``a."b.c".d`` -> ("a", "b.c", "d")."""
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*(?:\.|$)""", text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every table header and key path in ``text`` to its 1-based line number (first wins)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth = 0  # open brackets of a multi-line array
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in line:
                in_string = None
            continue
        if depth == 0:
            header = _HEADER.match(line)
            if header:
                table = split_key(header["key"])
                lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                lines.setdefault(table + split_key(key["key"]), number)
                line = line[key.end():]
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_string = quote
        code = re.sub(r"\"(?:\\.|[^\"\\])*\"|'[^']*'", "", line).split("#", 1)[0]
        depth = max(0, depth + code.count("[") - code.count("]"))
    return lines


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of ``path`` or, failing that, of its longest known prefix."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None
