"""The API reference (mkdocs + mkdocstrings) builds from the docstrings, strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_reference_builds_strict_and_documents_the_public_api(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install '.[docs]'")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    page = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for name in ("Store", "Collection", "DictView", "put_many", "find", "SerializerMismatch", "KeyValue"):
        assert name in page, f"{name} missing from the API reference"
