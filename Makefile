# kubetune: `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= dev,trainer,bench,plot

.PHONY: venv test test-core lint crds cluster-up cluster-down bench demo demo-down chart-lint clean images

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	bash devcluster/build.sh >/dev/null
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-core: $(STAMP)
	$(PY) -m pytest -q tests/core

crds: $(STAMP)
	$(PY) -m kubetune.kube.crd > crds/tuningstudy.yaml
	cp crds/tuningstudy.yaml helm/kubetune/files/tuningstudy.yaml

lint: $(STAMP)
	$(PY) -m ruff check .

cluster-up: $(STAMP)
	$(PY) -m kubetune_devcluster up

cluster-down: $(STAMP)
	$(PY) -m kubetune_devcluster down

bench: $(STAMP)
	bash devcluster/build.sh >/dev/null
	$(PY) benchmarks/bench_samplers.py --readme
	$(PY) benchmarks/bench_operator.py --readme
	$(PY) benchmarks/bench_load.py --readme

# devcluster, the Helm chart and examples/digits.yaml with live progress (scripts/demo.py).
demo: $(STAMP)
	bash devcluster/build.sh >/dev/null
	$(PY) scripts/demo.py up

demo-down: $(STAMP)
	$(PY) scripts/demo.py down

# The images the real nodes run, built from the Dockerfiles with mmdebstrap and podman (no
# Docker), cached in ~/.cache/kubetune/images by content. IMAGES="toy-trainer operator" for fewer.
IMAGES ?= toy-trainer operator trainer
images: $(STAMP)
	bash devcluster/build.sh >/dev/null
	$(PY) -m kubetune_devcluster.images $(IMAGES)

chart-lint: $(STAMP)
	"$$(bash devcluster/build.sh)/bin/helm" lint --strict helm/kubetune

clean:
	rm -rf $(VENV) .devcluster
