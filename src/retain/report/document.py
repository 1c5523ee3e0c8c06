"""A report as a list of plain blocks, so the Markdown and the HTML renderers show the same
content from one description (and neither has to parse the other)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    #: per column: "l" or "r"; default: first column left, the rest right
    align: list[str] = field(default_factory=list)

    def alignment(self) -> list[str]:
        return self.align or ["l"] + ["r"] * (len(self.header) - 1)


@dataclass
class Image:
    path: str  # relative to the report's folder
    caption: str


@dataclass
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Image | Code
