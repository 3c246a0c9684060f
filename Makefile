# kubetune: `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Each target installs only the extras it needs (pyproject.toml): a stamp per set of extras,
# redone when pyproject.toml changes. Only test, venv and demo install torch (trainer).
INSTALLED := $(VENV)/.installed-

.PHONY: venv test test-core lint crds cluster-up cluster-down bench measure demo demo-down chart-lint clean browser bench-samplers bench-scale images

$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$*]'
	touch $@

venv: $(INSTALLED)dev,trainer,bench,plot

# Headless Chromium and its driver for the dashboard's browser tests (Debian's packages,
# installed once; apt-get needs root, else sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium chromium-driver; }

# ruff, the layer contracts (import-linter) and mypy --strict (docs/design.md section 9); their
# caches live outside the checkout, so a fresh clone reuses them.
define static_checks
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --cache-dir $(HOME)/.cache/kubetune/import-linter
	MYPY_CACHE_DIR=$(HOME)/.cache/kubetune/mypy $(PY) -m mypy
endef

test: $(INSTALLED)dev,trainer,bench,plot browser
	bash devcluster/build.sh >/dev/null
	$(static_checks)
	$(PY) -m pytest -q

test-core: $(INSTALLED)dev,bench
	$(PY) -m pytest -q tests/core

crds: $(INSTALLED)dev
	$(PY) -m kubetune.kube.crd > crds/tuningstudy.yaml
	cp crds/tuningstudy.yaml helm/kubetune/files/tuningstudy.yaml

lint: $(INSTALLED)dev
	$(static_checks)

cluster-up: $(INSTALLED)devcluster
	$(PY) -m kubetune_devcluster up

cluster-down: $(INSTALLED)devcluster
	$(PY) -m kubetune_devcluster down

bench: $(INSTALLED)dev,bench browser
	bash devcluster/build.sh >/dev/null
	$(PY) benchmarks/bench_samplers.py --readme
	$(PY) benchmarks/bench_operator.py --readme
	$(PY) benchmarks/bench_load.py --readme
	$(PY) benchmarks/bench_scale.py --readme
	$(PY) benchmarks/bench_dashboard.py --readme
	$(PY) benchmarks/bench_sdk.py --readme

# 200 studies, 2,000 trials running, 20,000 finished, on devcluster (80 to 95 minutes here).
bench-scale: $(INSTALLED)dev,bench
	bash devcluster/build.sh >/dev/null
	$(PY) benchmarks/bench_scale.py --readme

# The README's devcluster and trainer tables, measured on this machine.
measure: $(INSTALLED)devcluster,trainer
	bash devcluster/build.sh >/dev/null
	$(PY) benchmarks/measure_devcluster.py --readme
	$(PY) benchmarks/measure_trainer.py --readme

# Our samplers against nevergrad, Optuna and SMAC3 on COCO bbob (benchmarks/bench_peers.py), on
# conditional spaces (benchmarks/bench_conditional.py), and for several objectives and
# constraints against Optuna and pymoo (benchmarks/bench_multiobjective.py).
bench-samplers: $(INSTALLED)dev,bench
	$(PY) -m pip install -q -e '.[bench-rf]' || echo "pyrfr did not build (it needs swig): smac-hpo is reported as not run"
	nice -n 10 $(PY) benchmarks/bench_peers.py --readme
	nice -n 10 $(PY) benchmarks/bench_conditional.py --readme
	nice -n 10 $(PY) benchmarks/bench_multiobjective.py --readme

# devcluster, the Helm chart and a study with live progress (scripts/demo.py): by default
# examples/digits.yaml; `make demo STUDY=examples/tradeoff.yaml` for accuracy against latency.
demo: STUDY ?= examples/digits.yaml
demo: $(INSTALLED)devcluster,trainer
	bash devcluster/build.sh >/dev/null
	$(PY) scripts/demo.py up --study $(STUDY)

demo-down: $(INSTALLED)devcluster
	$(PY) scripts/demo.py down

# The images the real nodes run, built from the Dockerfiles with mmdebstrap and podman (no
# Docker), cached in ~/.cache/kubetune/images by content. IMAGES="toy-trainer operator" for fewer.
IMAGES ?= toy-trainer operator trainer
images: $(INSTALLED)devcluster
	bash devcluster/build.sh >/dev/null
	$(PY) -m kubetune_devcluster.images $(IMAGES)

chart-lint:
	"$$(bash devcluster/build.sh)/bin/helm" lint --strict helm/kubetune

clean:
	rm -rf $(VENV) .devcluster
