"""Every Python example in README.md and docs/*.md runs, and the README's commands are CI's.

Rules for writing examples:

* A block fenced as ```` ```python ```` is executed.  All blocks of one file
  run in order in ONE namespace (a later block may use names an earlier one
  made), in a fresh temporary working directory, so files they create
  (``app.db``, ...) land there.  The namespace is a module registered in
  ``sys.modules``, so examples can define dataclasses and pickle their own
  classes.  Make them check what they claim with
  ``assert`` where the result matters.
* A block right after a line ``<!-- no-run -->`` is shown but skipped: use it
  for fragments that cannot run alone (other libraries' code, say).  The
  marker is an HTML comment so the Markdown renders (and mkdocs builds) as
  usual; the older form, an info string ``python no-run``, is also honoured.
* Other languages (```` ```sh ````, ...) are not run.

A failing example is reported at its own line in the Markdown file.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kvlite

ROOT = Path(__file__).resolve().parent.parent
# docs/backends/postgres.md and redis.md need a server: tests/test_backend_postgres.py and
# tests/test_backend_redis.py run their examples against a throwaway one (the URL in the text is
# swapped for the server's).
RUN_ELSEWHERE = {ROOT / "docs" / "backends" / "postgres.md", ROOT / "docs" / "backends" / "redis.md"}
DOC_FILES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if p not in RUN_ELSEWHERE)
_NO_RUN = "<!-- no-run -->"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    info: str      # the fence's info string, e.g. "python" or "python no-run"
    line: int      # 1-based line of the first code line in the file
    code: str
    marked_no_run: bool = False  # the previous non-blank line is <!-- no-run -->

    @property
    def runs(self) -> bool:
        words = self.info.split()
        return bool(words) and words[0] == "python" and "no-run" not in words and not self.marked_no_run


def code_blocks(text: str) -> list[Block]:
    """Every fenced code block of a Markdown text, in order (CommonMark fences, not indented code)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence)
                    and not closing["info"].strip()):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        blocks.append(Block(opening["info"].strip(), i + 2, "\n".join(body) + "\n", before == _NO_RUN))
        i = j + 1
    return blocks


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", DOC_FILES, ids=_doc_id)
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in code_blocks(path.read_text(encoding="utf-8")) if b.runs]
    if not blocks:
        pytest.skip(f"{_doc_id(path)} has no Python examples")
    monkeypatch.chdir(tmp_path)
    # A real module in sys.modules, so examples may define dataclasses and pickle their classes.
    module = types.ModuleType("kvlite_docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    try:
        for block in blocks:
            # Pad with newlines so a traceback names the Markdown line of the failure.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        for value in list(namespace.values()):
            if isinstance(value, kvlite.Store):
                value.close()


def test_the_docs_have_examples() -> None:
    """The files this suite promises to check exist and hold runnable examples."""
    names = {_doc_id(p) for p in DOC_FILES}
    for required in ["README.md", "docs/getting-started.md", "docs/data-model.md", "docs/dictview.md",
                     "docs/concurrency.md"]:
        assert required in names
        assert any(b.runs for b in code_blocks((ROOT / required).read_text(encoding="utf-8"))), required


def test_code_blocks_parser() -> None:
    text = (
        "intro\n"
        "```python\nx = 1\n```\n"
        "```python no-run\nnot python at all\n```\n"
        "````sh\n```python\nnested fence text\n```\n````\n"
        "  ```python\n  y = x + 1\n  ```\n"
        "~~~\nplain\n~~~\n"
        "<!-- no-run -->\n\n```python\nshown only\n```\n"
    )
    blocks = code_blocks(text)
    assert [(b.info, b.line, b.code, b.runs) for b in blocks] == [
        ("python", 3, "x = 1\n", True),
        ("python no-run", 6, "not python at all\n", False),
        ("sh", 9, "```python\nnested fence text\n```\n", False),
        ("python", 14, "y = x + 1\n", True),
        ("", 17, "plain\n", False),
        ("python", 22, "shown only\n", False),
    ]


# -- the README's two commands are exactly what CI runs --------------------------------------


def _ci_command(name: str) -> str:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(rf'^{name}="([^"$`\\]*)"$', script, re.MULTILINE)
    assert match, f'{name}="..." not found in .ci/run'
    return match.group(1)


@pytest.mark.parametrize("name", ["DEMO_CMD", "TEST_CMD"])
def test_readme_commands_are_the_ones_ci_runs(name: str) -> None:
    command = _ci_command(name)
    readme_shell_lines = [
        line.strip()
        for block in code_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
        if block.info in ("sh", "bash", "shell", "console")
        for line in block.code.splitlines()
    ]
    assert command in readme_shell_lines
