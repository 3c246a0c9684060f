"""The images build from the repository: every COPY source exists and reaches the build, the
entrypoint modules import, and every image runs as a non-root user. (The real builds, with
podman, are devcluster's: tests/e2e/test_real_node.py runs them.)"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubetune_devcluster.images import excluded

ROOT = Path(__file__).resolve().parents[1]
IMAGES = {
    "trainer-image/Dockerfile": "kubetune_trainer",
    "operator/Dockerfile": "kubetune",
    "toy-trainer-image/Dockerfile": "kubetune_trainer",
}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, f"{path}: a continuation line runs off the end"
    return out


def copy_sources(dockerfile: Path) -> list[str]:
    sources: list[str] = []
    for step in instructions(dockerfile):
        if step.keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(step.args)
        if any(w.startswith("--from") for w in words):
            continue  # from another stage, not the build context
        words = [w for w in words if not w.startswith("--")]
        assert len(words) >= 2, f"{dockerfile}: {step.keyword} {step.args} needs a source"
        sources += words[:-1]
    return sources


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_copy_source_exists_and_is_not_ignored(name: str) -> None:
    dockerfile = ROOT / name
    sources = copy_sources(dockerfile)
    assert sources
    ignore = Path(f"{dockerfile}.dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for source in sources:
        assert (ROOT / source).exists(), f"{name}: COPY {source}: no such path in the repository"
        assert not excluded(source, patterns), f"{name}: COPY {source} is in {ignore.name}"
    assert excluded(".venv/bin/python", patterns)
    assert excluded(".git/HEAD", patterns)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_copied_sources_are_what_the_package_build_needs(name: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"],
              *project["tool"]["setuptools"]["packages"]["find"]["where"]}
    copied = set(copy_sources(ROOT / name))
    assert needed <= copied, f"{name} misses {sorted(needed - copied)}"


@pytest.mark.parametrize(("name", "module"), sorted(IMAGES.items()))
def test_the_entrypoint_runs_an_importable_module_as_non_root(name: str, module: str) -> None:
    steps = instructions(ROOT / name)
    entrypoints = [s for s in steps if s.keyword == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0].args) == ["python", "-m", module]  # exec form: args pass on
    assert importlib.util.find_spec(module) is not None
    importlib.import_module(module)
    final_stage = steps[max(i for i, s in enumerate(steps) if s.keyword == "FROM"):]
    users = [s.args for s in final_stage if s.keyword == "USER"]
    assert users, f"{name}: the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    bases = [s.args.split()[0] for s in steps if s.keyword == "FROM"]
    assert any("python:3.11" in s.args for s in steps if s.keyword == "ARG"), bases


def test_the_trainer_entrypoint_starts() -> None:
    done = subprocess.run([sys.executable, "-m", "kubetune_trainer", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Hyperparameters and their defaults" in done.stdout


def test_only_the_trainer_image_installs_torch() -> None:
    def installs(name: str) -> str:
        return " ".join(s.args for s in instructions(ROOT / name) if s.keyword == "RUN")

    assert "torch" in installs("trainer-image/Dockerfile")
    assert ".[trainer]" in installs("trainer-image/Dockerfile")
    for name in ("operator/Dockerfile", "toy-trainer-image/Dockerfile"):
        assert "torch" not in installs(name)
        assert "trainer" not in installs(name)
