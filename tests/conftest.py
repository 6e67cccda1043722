"""Shared fixtures. Importing mcuforge first sets TF_USE_LEGACY_KERAS before TensorFlow loads."""

import os
from pathlib import Path

import pytest

import mcuforge  # noqa: F401  (sets the Keras 2 environment before any test imports TensorFlow)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own cache, so tests never read or write a developer's ~/.cache/mcuforge.

    Session-scoped, so it is in force before any module- or class-scoped fixture builds something.
    """
    previous = os.environ.get("MCUFORGE_CACHE")
    os.environ["MCUFORGE_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    yield
    if previous is None:
        del os.environ["MCUFORGE_CACHE"]
    else:
        os.environ["MCUFORGE_CACHE"] = previous
