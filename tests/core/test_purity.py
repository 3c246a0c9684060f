"""kubetune.core is pure: no Kubernetes client, HTTP library, torch or benchmark-only package.

Every module under kubetune.core is imported in a fresh interpreter, one after another, and any
forbidden top-level package that appears in sys.modules is charged to the module that pulled it
in, directly or through anything it imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ["kopf", "kubernetes", "httpx", "aiohttp", "torch", "optuna", "sklearn"]

_WALK = """
import importlib, json, pkgutil, sys
forbidden = set(json.loads(sys.argv[1]))
import kubetune.core as core
names = ["kubetune.core"] + [
    m.name for m in pkgutil.walk_packages(core.__path__, "kubetune.core.")
]
pulled = {}
for name in names:
    before = set(sys.modules)
    importlib.import_module(name)
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    if new & forbidden:
        pulled[name] = sorted(new & forbidden)
already = sorted({m.split(".")[0] for m in sys.modules} & forbidden)
print(json.dumps({"modules": names, "pulled": pulled, "loaded": already}))
"""

_LAZY = """
import json, sys
import kubetune.core
print(json.dumps(sorted(m for m in sys.modules if m.startswith("kubetune.core.samplers."))))
"""


def _run(script: str, *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_core_module_imports_a_forbidden_package():
    found = _run(_WALK, json.dumps(FORBIDDEN))
    assert "kubetune.core.samplers.grid" in found["modules"]  # the walk reached the samplers
    assert found["pulled"] == {}, f"kubetune.core must stay pure: {found['pulled']}"
    assert found["loaded"] == []


def test_samplers_load_only_when_asked_for():
    loaded = _run(_LAZY)
    assert loaded == ["kubetune.core.samplers.base"], loaded
