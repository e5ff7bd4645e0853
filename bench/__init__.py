"""kvlite's benchmark suite: ``python -m bench`` (see bench/README.md).

Modules: :mod:`bench.data` (the documents), :mod:`bench.stores` (one adapter
per store), :mod:`bench.workloads` (the registry of timed workloads),
:mod:`bench.child` (one measurement per process), :mod:`bench.runner` (the
plan and the repeats), :mod:`bench.report` (Markdown tables).
"""
