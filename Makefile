# Every target bootstraps .venv itself: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on two workers (pytest-xdist), a test file per worker at a time: most tests wait on
# servers and subprocesses. `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
DURATION ?= 120

.PHONY: test demo bench bench-full bench-tools serve lint format clean soak prefect-yaml

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, and mypy on the product (strict on the pure core: [tool.mypy] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# deployments/prefect.yaml is generated from deployments/serve.py (tests/unit/test_prefect_yaml.py).
prefect-yaml: $(STAMP)
	$(BIN)/python -m deployments.prefect_yaml

demo: $(STAMP)
	$(BIN)/shopsync demo

serve: $(STAMP)
	$(BIN)/shopsync serve --sandbox

# wrk (Debian) drives the receiver benchmark; without it that one benchmark says "not measured".
bench-tools:
	@command -v wrk >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1) || \
		echo "wrk is not installed: the receiver benchmark will report 'not measured'"

bench: $(STAMP) bench-tools
	$(BIN)/python -m bench --profile quick

bench-full: $(STAMP) bench-tools
	$(BIN)/python -m bench --profile full

# Reliability soak (tests/reliability/soak.py): bounded, loopback only; prints a JSON summary.
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --duration $(DURATION)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
