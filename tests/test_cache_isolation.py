"""Tests never read or write the developer's ~/.cache/mcuforge, module-scoped fixtures included."""

from pathlib import Path

import pytest

from mcuforge.artifacts import data_cache_dir
from mcuforge.hostbuild import cache_dir


@pytest.fixture(scope="module")
def caches_seen_by_a_module_fixture() -> list[Path]:
    return [cache_dir(), data_cache_dir()]


def test_module_fixtures_see_the_session_cache(caches_seen_by_a_module_fixture, tmp_path_factory):
    home_cache = Path.home() / ".cache" / "mcuforge"
    for path in [*caches_seen_by_a_module_fixture, cache_dir(), data_cache_dir()]:
        assert tmp_path_factory.getbasetemp() in path.parents
        assert home_cache not in path.parents
