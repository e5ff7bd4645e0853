"""What the dict-view tests share: the one documented deviation from ``dict`` in CPython's mapping
protocol tests (``test.mapping_tests.TestMappingProtocol``), used by tests/test_dictview.py, the
conformance suite (one TestCase per engine) and the PostgreSQL engine's tests."""

from __future__ import annotations

from test import mapping_tests  # ships with CPython; imported as a module so pytest does not collect its bases


class DocumentedSetdefault:
    """The one documented deviation from ``dict``: values are stored copies.

    ``d.setdefault('key', []).append(3)`` appends to a copy, so the stored value
    stays ``[]`` (as with ``shelve`` without writeback).  CPython's
    ``test_setdefault`` asserts the opposite, so it is the only inherited test
    replaced: this version runs the base protocol checks and then asserts the
    documented semantics instead.  Every other inherited test runs unmodified.
    """

    def test_setdefault(self) -> None:
        mapping_tests.BasicTestMappingProtocol.test_setdefault(self)  # type: ignore[arg-type]
        d = self._empty_mapping()  # type: ignore[attr-defined]
        self.assertTrue(d.setdefault("key0") is None)  # type: ignore[attr-defined]
        d.setdefault("key0", [])
        self.assertTrue(d.setdefault("key0") is None)  # type: ignore[attr-defined]
        first = d.setdefault("key", [])
        self.assertEqual(first, [])  # type: ignore[attr-defined]
        first.append(3)  # changes the returned copy only
        self.assertEqual(d["key"], [])  # type: ignore[attr-defined]
        again = d.setdefault("key", [9])
        self.assertEqual(again, [])  # type: ignore[attr-defined]
        self.assertIsNot(again, first)  # type: ignore[attr-defined]
        d["key"] = d["key"] + [3, 4]  # the documented way to change a stored value
        self.assertEqual(d.setdefault("key", []), [3, 4])  # type: ignore[attr-defined]
