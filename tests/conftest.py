"""Shared fixtures. Importing mcuforge first sets TF_USE_LEGACY_KERAS before TensorFlow loads."""

from pathlib import Path

import pytest

import mcuforge  # noqa: F401  (sets the Keras 2 environment before any test imports TensorFlow)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache, so tests never depend on a developer's ~/.cache."""
    monkeypatch.setenv("MCUFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
