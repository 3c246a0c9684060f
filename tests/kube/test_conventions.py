"""kube.conventions: Job names, label values and seeds that fit Kubernetes' limits
(docs/design.md section 3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kubetune.core.spec import MAX_SEED
from kubetune.kube import conventions as names

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

# Study names as Kubernetes allows them (DNS-1123 labels, up to 253 characters for a custom
# resource), chosen so that a cut at any length may land on a '-'.
LABEL_NAMES = [
    "s",
    "digits-mlp",
    "a" * 49,
    "a" * 48 + "-b",
    "a" * 49 + "-" + "b" * 20,
    "x-" * 40 + "y",
    "a" * 63,
    "a" * 200,
    "9" * 100,
]
NUMBERS = [0, 1, 7, 42, 10_000, 999_999, 10**7 - 1]


@pytest.mark.parametrize("study", LABEL_NAMES, ids=lambda s: f"{s[:12]}..{len(s)}")
@pytest.mark.parametrize("number", NUMBERS)
def test_trial_job_name_is_a_dns_label_of_at_most_63(study: str, number: int) -> None:
    name = names.trial_job_name(study, UID, number)
    assert len(name) <= 63, name
    assert DNS1123_LABEL.match(name), name
    assert name.endswith(f"-0a1b2-{number}")


@pytest.mark.parametrize("study", ["a" * 60, "a" * 200], ids=["60-chars", "200-chars"])
@pytest.mark.parametrize("number", [10**7, 10**9])
def test_trial_job_name_fits_for_eight_digit_numbers(study: str, number: int) -> None:
    # status.nextTrial may reach 10**9 (spec.MAX_COUNT), and numbers are never reused.
    assert len(names.trial_job_name(study, UID, number)) <= 63


def test_trial_job_name_keeps_a_short_study_name_whole() -> None:
    assert names.trial_job_name("digits-mlp", UID, 3) == "digits-mlp-0a1b2-3"


def test_dotted_study_name_gives_a_dns_subdomain() -> None:
    # A custom resource's name is a DNS subdomain, so a study may be called "team.model".
    for study in ["team.model", "a" * 47 + ".b" * 30]:
        name = names.trial_job_name(study, UID, 12)
        assert len(name) <= 63
        assert DNS1123_SUBDOMAIN.match(name), name


def test_trial_job_name_differs_by_uid_and_number() -> None:
    uids = [
        "0a1b2c3d-0000-0000-0000-000000000000",
        "0a1b3c3d-0000-0000-0000-000000000000",
        "ffffffff-0000-0000-0000-000000000000",
        "0a1b-2c3d",  # the dash is skipped: 5 hex characters of the UID itself
    ]
    study = "a" * 100
    by_uid = {names.trial_job_name(study, u, 5) for u in uids[:3]}
    assert len(by_uid) == 3
    assert names.trial_job_name(study, uids[3], 5).endswith("-0a1b2-5")
    by_number = {names.trial_job_name(study, UID, n) for n in range(50)}
    assert len(by_number) == 50


def test_trial_job_name_is_stable() -> None:
    assert names.trial_job_name("a" * 100, UID, 7) == names.trial_job_name("a" * 100, UID, 7)


@pytest.mark.parametrize(
    "text",
    [
        "digits-mlp",
        "a" * 63,
        "a" * 64,
        "a" * 253,
        "a" * 53 + "-" + "b" * 20,
        "team.model." + "c" * 80,
    ],
)
def test_label_value_fits(text: str) -> None:
    value = names.label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value
    if len(text) <= 63:
        assert value == text


def test_label_value_distinct_for_long_names_sharing_a_prefix() -> None:
    prefix = "study-" + "p" * 70
    texts = [prefix + suffix for suffix in ["", "a", "b", "-1", "-2", "x" * 100]]
    values = [names.label_value(t) for t in texts]
    assert len(set(values)) == len(texts)
    assert all(len(v) <= 63 for v in values)
    assert names.label_value(texts[1]) == names.label_value(texts[1])


def test_study_seed_is_stable_and_in_range() -> None:
    # A fixed value: a change here changes every seedless study's proposals after an upgrade.
    assert names.study_seed(UID) == 954524844
    seeds = {names.study_seed(f"{i:08x}-0000-0000-0000-000000000000") for i in range(200)}
    assert len(seeds) == 200
    assert all(0 <= s <= MAX_SEED for s in seeds)


def test_api_names_match_the_design() -> None:
    assert (names.GROUP, names.VERSION, names.KIND, names.PLURAL) == (
        "kubetune.dev",
        "v1alpha1",
        "TuningStudy",
        "tuningstudies",
    )
    assert names.STUDY_UID_LABEL == "kubetune.dev/study-uid"
    assert names.STUDY_LABEL == "kubetune.dev/study"
    assert names.TRIAL_LABEL == "kubetune.dev/trial"
    assert names.FINALIZER == "kubetune.dev/result"
    assert names.PARAMS_ANNOTATION == "kubetune.dev/params"
    assert names.RESULT_ANNOTATION == "kubetune.dev/result"
    assert names.TRIAL_SERVICE_ACCOUNT == "kubetune-trial"


def test_names_the_operator_uses_are_in_all() -> None:
    src = Path(names.__file__).parent.parent
    used = {
        m for f in src.rglob("*.py") for m in re.findall(r"\bnames\.([A-Za-z_]+)", f.read_text())
    }
    assert used, "no use of conventions found: the pattern is stale"
    assert sorted(used - set(names.__all__)) == []
