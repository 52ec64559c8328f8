# evotrader: `make train` and `make test` do everything on a fresh machine.
PYTHON        ?= python3
VENV          ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=
PYTEST_ARGS   ?= --durations=25  # the slowest tests, printed after each run (budget: make test < 25 min)
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.installed

.PHONY: setup train test test-fast bench lint clean browser

setup: $(STAMP)

# Torch goes in first and pinned: a loose requirement would pull CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the HTML report's screenshot test (Debian's package), once.
APT := $(if $(filter 0,$(shell id -u)),,sudo )env DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@test -x /usr/bin/chromium || { $(APT) update && $(APT) install -y chromium; }

train: setup
	$(PY) run_training.py $(ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# The peers (gym-anytrading, stable-baselines3) only for the bench; torch stays pinned.
bench: setup
	$(PY) -m pip install --quiet -e ".[bench]" torch==$(TORCH_VERSION)
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
