"""Shared fixtures. Importing mcuforge first sets TF_USE_LEGACY_KERAS before TensorFlow loads."""

import os
from pathlib import Path

import pytest

import mcuforge  # noqa: F401  (sets the Keras 2 environment before any test imports TensorFlow)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
# Federated tests start Ray, SuperLinks and SuperNodes on every core and keep round deadlines.
ALONE_PREFIX = "test_federated"


def pytest_collection_modifyitems(items):
    """Marks the tests that must not share the machine with another test (`make test` runs them after the rest)."""
    for item in items:
        if item.path.name.startswith(ALONE_PREFIX):
            item.add_marker(pytest.mark.alone)


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
