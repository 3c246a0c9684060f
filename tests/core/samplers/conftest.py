"""Fixtures for the sampler tests: every registered sampler, by name."""

from __future__ import annotations

import pytest
from kubetune.core.samplers import SAMPLER_NAMES, get_sampler


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a sampler case that takes seconds, not milliseconds")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The GP's cost grows with the cube of the history: its 500-trial cases are the slow ones.
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params else {}
        if params.get("sampler_name") == "gp" and params.get("prior") == 500:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=SAMPLER_NAMES)
def sampler_name(request: pytest.FixtureRequest) -> str:
    """Every registered sampler: one that is registered but missing fails here."""
    return request.param


@pytest.fixture
def sampler(sampler_name: str):
    return get_sampler(sampler_name)
