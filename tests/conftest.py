"""Fixtures shared across test packages."""

from __future__ import annotations

import pytest

from moldau.records import validation

IMPLS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name not in validation.IMPLEMENTATIONS, reason="C extension not built"
        ),
    )
    for name in ("c", "python")
]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make validate_records use one implementation of the walk for this test."""
    monkeypatch.setattr(validation, "scan", validation.IMPLEMENTATIONS[request.param])
    return request.param
