"""Shared helpers of the KB tests: a migrated temporary SQLite database and the datasets folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.settings import ROOT


def datasets_dir() -> Path:
    return Path(os.environ.get("WARMLINE_DATASETS") or ROOT.parent / "shared" / "datasets")


def require_dataset(relative: str) -> Path:
    """The dataset file, or skip with the reason (a failure under CI=true: there it must be present)."""
    path = datasets_dir() / relative
    if path.exists():
        return path
    reason = f"dataset not found: {path} (set WARMLINE_DATASETS)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; under CI a missing dataset is a failure, not a skip")
    pytest.skip(reason)
