"""benchmarks/tables.py: every measured README table goes between its own two markers, and
nothing else in the README changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TABLES = Path(__file__).resolve().parents[1] / "benchmarks" / "tables.py"
MARKS = ("<!-- x:start -->", "<!-- x:end -->")


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("tables", TABLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_markdown_has_a_header_a_rule_and_one_line_per_row(tables):
    text = tables.markdown(("measure", "value"), [("a", "1"), ("b", "2")])
    assert text.splitlines() == ["| measure | value |", "|---|---|", "| a | 1 |", "| b | 2 |"]


def test_a_block_replaces_only_what_is_between_its_markers(tables, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{MARKS[0]}\nold table\n{MARKS[1]}\noutro\n")
    assert tables.write_readme_block(MARKS, "new table", readme)
    assert readme.read_text() == f"intro\n{MARKS[0]}\nnew table\n{MARKS[1]}\noutro\n"
    assert tables.write_readme_block(MARKS, "newer", readme)  # again: still one block
    assert readme.read_text().count("newer") == 1 and "new table" not in readme.read_text()


def test_a_readme_without_the_markers_is_left_alone(tables, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert not tables.write_readme_block(MARKS, "table", readme)
    assert readme.read_text() == "no markers here\n"


def test_publishing_into_a_readme_without_markers_is_an_error(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- x:start -->"):
        tables.publish(tmp_path / "r.md", "T", "table", MARKS, readme=True)
    assert (tmp_path / "r.md").read_text() == "# T\n\ntable\n"
