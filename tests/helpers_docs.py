"""Fenced code blocks of a Markdown text (CommonMark fences, not indented code), and which of them
run: used by tests/test_docs.py and by the engine tests that run their pages' examples against a
throwaway server (tests/test_backend_postgres.py, tests/test_backend_redis.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NO_RUN = "<!-- no-run -->"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    info: str      # the fence's info string, e.g. "python" or "python no-run"
    line: int      # 1-based line of the first code line in the file
    code: str
    marked_no_run: bool = False  # the previous non-blank line is <!-- no-run -->

    @property
    def language(self) -> str:
        words = self.info.split()
        return words[0] if words else ""

    @property
    def runs(self) -> bool:
        return (self.language in RUNNABLE and "no-run" not in self.info.split()
                and not self.marked_no_run)


RUNNABLE = ("python", "console")


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
