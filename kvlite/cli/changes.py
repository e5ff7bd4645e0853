"""Commands for a live store: ``changes`` (the change feed as JSON Lines) and ``backup``."""

from __future__ import annotations

import argparse
import os
import sys

from .. import keys as _keys
from ..collection import ABSENT
from .common import CliError, Subparsers, add_command, file_arg, non_negative_int, open_file
from .text import record_line, stdout

__all__ = ["setup_backup", "setup_changes"]


def setup_changes(sub: Subparsers) -> None:
    p = add_command(sub, "changes", "print recorded changes as JSON Lines; --follow waits for new ones",
                    handler=_run_changes,
                    description="Print {\"seq\", \"collection\", \"key\", \"op\", \"value\"} per change after --since, "
                                "in commit order, of the collections that record changes (opened with "
                                "changes=True) or only COLL. Keys other than str are tagged ({\"int\": 5}). "
                                "--follow keeps waiting for new changes from any process (Ctrl-C stops).")
    file_arg(p)
    p.add_argument("collection", metavar="COLL", nargs="?", help="only this collection's changes")
    p.add_argument("--since", type=non_negative_int, default=0, metavar="N",
                   help="changes after seq N (default 0: all that are kept)")
    p.add_argument("--follow", action="store_true", help="wait for new changes after the last one")
    p.add_argument("--timeout", type=float, metavar="S", help="with --follow: stop after S seconds without a change")


def _run_changes(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.follow:
        raise CliError("--timeout goes with --follow")
    with open_file(args.file, write=False) as store:
        names = None if args.collection is None else [args.collection]
        out = stdout()
        for change in store.changes(args.since, collections=names, wait=args.follow, timeout=args.timeout):
            value = None if change.value is ABSENT else change.value  # JSON has no "absent"
            out.write(record_line((b'"seq"', change.seq), (b'"collection"', change.collection),
                                  (b'"key"', _keys.to_json(change.key)), (b'"op"', change.op),
                                  (b'"value"', value)))
            if args.follow:
                out.flush()
    return 0


def setup_backup(sub: Subparsers) -> None:
    p = add_command(sub, "backup", "copy a live store consistently while others write to it",
                    handler=_run_backup,
                    description="Write a consistent copy of SRC to DST (the store as it was when the backup "
                                "began) while other processes go on writing; DST appears only when complete "
                                "(a file already there is replaced). Shows progress on a terminal.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")


def _run_backup(args: argparse.Namespace) -> int:
    shown = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if shown and total:
            sys.stderr.write(f"\rbackup: {100 * done // total:3d}% of {total:,} pages")
            sys.stderr.flush()

    with open_file(args.src, write=False) as store:
        store.backup(args.dst, progress=progress)
    if shown:
        sys.stderr.write("\r\x1b[K")
    sys.stderr.write(f"backed up {args.src} to {args.dst} ({os.path.getsize(args.dst):,} bytes)\n")
    return 0
