"""The registry: names, lazy loading and the error for an unknown name."""

from __future__ import annotations

import pytest
from kubetune.core.samplers import SAMPLER_NAMES, get_sampler


def test_names_match_the_spec():
    assert set(SAMPLER_NAMES) == {"auto", "random", "grid", "sobol", "tpe", "gp", "cmaes"}


def test_a_sampler_knows_its_name(sampler_name):
    assert get_sampler(sampler_name).name == sampler_name


def test_unknown_name_says_what_to_use():
    with pytest.raises(ValueError, match=r"spec\.algorithm\.name: 'bayes'.*auto, random, grid"):
        get_sampler("bayes")
