"""Render report blocks as GitHub-flavoured Markdown, ready to paste into a README."""

from __future__ import annotations

from retain.report.document import Block, Bullets, Code, Heading, Image, Para, Table


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(t: Table) -> str:
    sep = ["---:" if a == "r" else ":---" for a in t.alignment()]
    lines = ["| " + " | ".join(map(_cell, t.header)) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


def render(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            out.append(table(b))
        elif isinstance(b, Image):
            out.append(f"![{b.caption}]({b.path})")
        elif isinstance(b, Code):
            out.append("```\n" + b.text + "\n```")
    return "\n\n".join(out) + "\n"
