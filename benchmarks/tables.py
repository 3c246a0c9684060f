"""The README's measured tables: each is written by the script that measured it, between two
marker comments (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``), and into a results file.

The benchmarks and scripts/measure_*.py all publish through ``publish``, so a README figure
always names the script that produced it and can be produced again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ROOT", "markdown", "publish", "write_readme_block"]

ROOT = Path(__file__).resolve().parents[1]


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: ``head`` is the header row, each row has as many cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def publish(results: Path, title: str, text: str, marks: tuple[str, str], readme: bool) -> None:
    """Write a table to its results file and stdout, and into the README if asked."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(f"# {title}\n\n{text}\n")
    print(text)
    if readme and not write_readme_block(marks, text):
        raise SystemExit(f"README.md has no {marks[0]} ... {marks[1]} block")


def write_readme_block(marks: tuple[str, str], text: str, readme: Path | None = None) -> bool:
    """Put ``text`` between the README's two marker comments; False if they are missing."""
    readme = readme or ROOT / "README.md"
    content = readme.read_text()
    if marks[0] not in content or marks[1] not in content:
        print(f"{readme.name} has no {marks[0]} ... {marks[1]} block", file=sys.stderr)
        return False
    start, end = content.index(marks[0]) + len(marks[0]), content.index(marks[1])
    readme.write_text(content[:start] + "\n" + text + "\n" + content[end:])
    return True
