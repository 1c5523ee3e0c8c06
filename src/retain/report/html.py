"""Render report blocks as one self-contained HTML file: styles inline, plots embedded as
base64 PNG, nothing fetched from anywhere."""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from retain.report.document import Block, Bullets, Code, Heading, Image, Para, Table

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1f2328; line-height: 1.45; }
.table { overflow-x: auto; margin: 1em 0; }  /* a wide table scrolls, the page does not */
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; }
td.r { white-space: nowrap; }
th { background: #f6f8fa; }
td.r, th.r { text-align: right; } td.l, th.l { text-align: left; }
figure { margin: 1.5em 0; } figcaption { color: #59636e; font-size: 0.9em; }
img { max-width: 100%; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
"""


def _inline(text: str) -> str:
    """Escape, then turn Markdown's `code` and **bold** into tags (all the paragraphs use)."""
    text = escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def table(t: Table) -> str:
    al = t.alignment()
    head = "".join(f'<th class="{a}">{escape(h)}</th>' for h, a in zip(t.header, al))
    body = "".join("<tr>" + "".join(f'<td class="{a}">{_inline(str(c))}</td>' for c, a in zip(row, al)) + "</tr>"
                   for row in t.rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _image(b: Image, root: Path) -> str:
    data = base64.b64encode((root / b.path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(b.caption)}">'
            f"<figcaption>{escape(b.caption)}</figcaption></figure>")


def render(blocks: list[Block], root: Path, title: str) -> str:
    """``root`` is the folder image paths are relative to."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            parts.append(table(b))
        elif isinstance(b, Image):
            parts.append(_image(b, root))
        elif isinstance(b, Code):
            parts.append(f"<pre><code>{escape(b.text)}</code></pre>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
