"""Every example in README.md and docs/*.md runs, and the README's commands are CI's.

Rules for writing examples:

* A block fenced as ```` ```python ```` is executed.  All blocks of one file
  run in order in ONE namespace (a later block may use names an earlier one
  made), in a fresh temporary working directory, so files they create
  (``app.db``, ...) land there.  The namespace is a module registered in
  ``sys.modules``, so examples can define dataclasses and pickle their own
  classes.  Make them check what they claim with ``assert`` where the result
  matters, and give a ``try`` that shows an exception an ``else: raise
  AssertionError(...)``, so the example fails if the exception stops coming.
* A block fenced as ```` ```console ```` is a shell session, run by bash in
  the same working directory, in its place among the file's Python blocks
  (so it sees the files they made, and they see its files).  A line starting
  with ``$ `` is a command (a line ending in a backslash continues it on the next
  line); the lines after it, up to the next ``$ `` line, are exactly what it
  prints, stdout and stderr together, in order.  Commands run in one bash
  process per block (``cd``, variables and ``$?`` carry over), with the
  ``kvlite`` console script of the Python running the tests first on ``PATH``.
  One wildcard, for what differs between runs (timings, seconds left, file
  sizes): ``[...]`` in a line matches any text within that line, and a line
  that is only ``[...]`` matches any number of lines (none included).  A
  block whose commands use ``jq`` is skipped, with the reason, when ``jq`` is
  not installed.
* A block right after a line ``<!-- no-run -->`` is shown but skipped: use it
  for fragments that cannot run alone (other libraries' code, say).  The
  marker is an HTML comment so the Markdown renders (and mkdocs builds) as
  usual; the older form, an info string ``python no-run``, is also honoured.
* Other languages (```` ```sh ```` for install commands, ```` ```json ````,
  ...) are not run.  The README's ``sh`` commands are run by CI (.ci/run),
  which the last test here checks.
* A user may run an example twice: each file's examples also run a second
  time in the same folder, as a new program would (a fresh namespace, the
  serializers the first run registered forgotten, its files still there),
  and must pass again.  Make an example idempotent (it clears the
  collections it is about to fill, saying so in a comment) or, where it
  needs a fresh file, say so and remove its own file first; a console
  session's output must match on both runs (``[...]`` only for what really
  differs between them).

Only files with at least one runnable example are collected; a failing
example is reported at its own line in the Markdown file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_docs import Block, code_blocks

import kvlite

ROOT = Path(__file__).resolve().parent.parent
# docs/backends/postgres.md and redis.md need a server: tests/test_backend_postgres.py and
# tests/test_backend_redis.py run their examples against a throwaway one (the URL in the text is
# swapped for the server's).
RUN_ELSEWHERE = {ROOT / "docs" / "backends" / "postgres.md", ROOT / "docs" / "backends" / "redis.md"}
DOC_FILES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")] if p not in RUN_ELSEWHERE)


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _runnable(path: Path) -> list[Block]:
    return [b for b in code_blocks(path.read_text(encoding="utf-8")) if b.runs]


# Only files that have examples: a file without any is not a skipped test, just not one.
EXAMPLE_FILES = [p for p in DOC_FILES if _runnable(p)]


def _run_examples(path: Path, blocks: list[Block], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run ``blocks`` of ``path`` in order in ``cwd`` (already the working directory), in a fresh
    namespace; returns why blocks were not run (``line N: reason``)."""
    # A real module in sys.modules, so examples may define dataclasses and pickle their classes.
    module = types.ModuleType("kvlite_docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    skipped: list[str] = []
    # A run is a program of its own: the serializers it registers are forgotten after it (as
    # when a new process runs it again), so the next run may register them again.
    registry = kvlite.serializers._registry
    lazy = kvlite.serializers._lazy
    saved = dict(registry), dict(lazy)
    try:
        for block in blocks:
            if block.language == "console":
                reason = run_console(block, path, cwd)
                if reason:
                    skipped.append(f"line {block.line}: {reason}")
                continue
            # Pad with newlines so a traceback names the Markdown line of the failure.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    finally:
        for value in list(namespace.values()):
            if isinstance(value, kvlite.Store):
                value.close()
        registry.clear()
        registry.update(saved[0])
        lazy.clear()
        lazy.update(saved[1])
    return skipped


def _skip_or_fail(path: Path, skipped: list[str]) -> None:
    if skipped:
        message = f"{_doc_id(path)}: every other example passed; not run: {'; '.join(skipped)}"
        if os.environ.get("CI") == "true":  # .ci/run installs jq: in CI every example runs
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_doc_id)
def test_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _skip_or_fail(path, _run_examples(path, _runnable(path), tmp_path, monkeypatch))


def _markdown_line(error: BaseException, path: Path) -> int | None:
    """The line of ``path`` (an example's Markdown file) where ``error`` was raised, if it was."""
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == str(path):
            line = lineno
    return line


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_doc_id)
def test_examples_run_twice(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who runs an example again in the same folder sees it work again: every file's
    examples run a second time in the same directory (a fresh namespace, the files of the first
    run still there), and pass."""
    blocks = _runnable(path)
    monkeypatch.chdir(tmp_path)
    first = _run_examples(path, blocks, tmp_path, monkeypatch)
    try:
        second = _run_examples(path, blocks, tmp_path, monkeypatch)
    except pytest.fail.Exception as error:  # a console block: its message names path:line
        pytest.fail(f"the second run in the same folder failed:\n{error.msg}", pytrace=False)
    except Exception as error:
        where = f"{path}:{_markdown_line(error, path) or '?'}"
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-6:])
        pytest.fail(f"{where}: the second run in the same folder failed: {type(error).__name__}: {error}\n"
                    f"{detail}", pytrace=False)
    _skip_or_fail(path, first or second)


def test_the_docs_have_examples() -> None:
    """The files this suite promises to check exist and hold runnable examples."""
    names = {_doc_id(p) for p in EXAMPLE_FILES}
    for required in ["README.md", "docs/getting-started.md", "docs/data-model.md", "docs/dictview.md",
                     "docs/queries.md", "docs/concurrency.md", "docs/cli.md", "docs/migrating.md",
                     "docs/limits.md"]:
        assert required in names, f"{required} has no runnable example"
    cli_blocks = _runnable(ROOT / "docs" / "cli.md")
    assert sum(b.language == "console" for b in cli_blocks) >= 5


# -- console sessions ------------------------------------------------------------------------

WILDCARD = "[...]"


@dataclass(frozen=True)
class Command:
    line: int          # 1-based line of the `$ ` line in the Markdown file
    text: str          # the command, continuation lines joined by newlines
    expected: list[str]


def parse_console(block: Block) -> list[Command]:
    """The commands of a console block, each with the output lines that follow it."""
    commands: list[Command] = []
    lines = block.code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            raise ValueError(f"line {block.line + i}: a console block starts with a '$ ' command, "
                             f"not {line!r}")
        start = block.line + i
        text = [line[2:]]
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        commands.append(Command(start, "\n".join(text), expected))
    return commands


def output_matches(expected: list[str], actual: str) -> bool:
    """``actual`` (a command's whole output) is ``expected``, line for line, with the wildcard."""
    pattern = ""
    for line in expected:
        if line == WILDCARD:
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += "[^\n]*?".join(re.escape(part) for part in line.split(WILDCARD)) + r"\n"
    return re.fullmatch(pattern, actual) is not None


_MARK = "\0kvlite-docs:"


def run_console(block: Block, path: Path, cwd: Path) -> str | None:
    """Run a console block in ``cwd``; fail at the first command whose output differs.
    Returns the reason it was not run, or ``None`` once it ran and passed."""
    commands = parse_console(block)
    if any(re.search(r"(^|[|;&(]\s*)jq\b", c.text, re.MULTILINE) for c in commands) and not shutil.which("jq"):
        return "it uses jq, which is not installed"
    script = ["exec 2>&1"]
    for number, command in enumerate(commands):
        # Each command's output ends at the next mark, which also carries its exit status;
        # `(exit $s)` puts the status back, so `echo $?` shows the command's own.
        script.append(command.text)
        script.append(f"__s=$?; printf '{_MARK.replace(chr(0), chr(92) + '0')}%s:%s\\0' {number} $__s; (exit $__s)")
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), TMPDIR=str(cwd),
               COLUMNS="80", LC_ALL="C.UTF-8")
    env.pop("KVLITE_TRACEBACK", None)
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(script)], cwd=cwd, env=env,
                            capture_output=True, timeout=300, check=False)
    chunks = result.stdout.decode("utf-8", "backslashreplace").split(_MARK)
    outputs = [chunks[0]]
    statuses = []
    for chunk in chunks[1:]:
        head, _, rest = chunk.partition("\0")
        statuses.append(head.split(":")[1])
        outputs.append(rest)
    for number, command in enumerate(commands):
        got = outputs[number] if number < len(outputs) else "(the session ended before this command)"
        if not output_matches(command.expected, got):
            status = statuses[number] if number < len(statuses) else "?"
            expected = "\n".join(command.expected)
            pytest.fail(f"{path}:{command.line}: $ {command.text}\n(exit status {status})\n"
                        f"--- expected ---\n{expected}\n--- got ---\n{got}", pytrace=False)
    return None


def test_console_parser_and_wildcard() -> None:
    text = ("```console\n"
            "$ kvlite put a.db c k 1\n"
            "$ echo one \\\n"
            "  two\n"
            "one two\n"
            "$ kvlite export a.db\n"
            '{"ttl":[...]}\n'
            "[...]\n"
            "last\n"
            "```\n")
    [block] = code_blocks(text)
    assert block.runs and block.language == "console"
    commands = parse_console(block)
    assert [(c.line, c.text, c.expected) for c in commands] == [
        (2, "kvlite put a.db c k 1", []),
        (3, "echo one \\\n  two", ["one two"]),
        (6, "kvlite export a.db", ['{"ttl":[...]}', "[...]", "last"]),
    ]
    assert output_matches([], "")
    assert not output_matches([], "surprise\n")
    assert not output_matches(["x"], "x")                      # a missing final newline differs
    assert output_matches(['{"ttl":[...]}'], '{"ttl":3597.5}\n')
    assert not output_matches(['{"ttl":[...]}'], '{"ttl":1}\n{"ttl":2}\n')   # [...] in a line: that line
    assert output_matches(["a", "[...]", "z"], "a\nz\n")
    assert output_matches(["a", "[...]", "z"], "a\nb\nc\nz\n")
    assert not output_matches(["a", "[...]", "z"], "a\nb\n")
    assert output_matches(["a.b (c)"], "a.b (c)\n") and not output_matches(["a.b"], "axb\n")
    with pytest.raises(ValueError, match="starts with a '\\$ ' command"):
        parse_console(Block("console", 1, "output first\n$ true\n"))


def test_console_sessions_run_and_compare(tmp_path: Path) -> None:
    """A console block runs for real, and a difference fails at the right command."""
    good = Block("console", 10, "$ x=5; echo $x\n5\n$ false\n$ echo $?\n1\n$ printf 'a\\nb\\n' >&2\na\nb\n")
    assert run_console(good, tmp_path / "doc.md", tmp_path) is None
    bad = Block("console", 20, "$ echo one\none\n$ echo two\nthree\n")
    with pytest.raises(pytest.fail.Exception, match=r"doc.md:22: \$ echo two"):
        run_console(bad, tmp_path / "doc.md", tmp_path)
    real = Block("console", 1, "$ kvlite put s.db c k '[1]'\n$ kvlite get s.db c k\n[1]\n")
    assert run_console(real, tmp_path / "doc.md", tmp_path) is None
    with kvlite.open(tmp_path / "s.db") as store:
        assert store.collection("c").get("k") == [1]


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


# -- the mkdocs site ----------------------------------------------------------------------------


def test_the_site_has_a_home_page_and_every_page_is_reachable() -> None:
    """`mkdocs serve` has a root page (docs/index.md), the nav lists every page once, and the
    home page links to every page (the strict build itself runs in test_api_reference.py)."""
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", config, re.MULTILINE)
    assert sorted(nav) == pages
    assert nav[0] == "index.md"
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", home))
    assert linked == set(pages) - {"index.md"}
