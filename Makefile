# Every target that needs Python first makes sure .venv/ matches pyproject.toml.
PY ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= demo-output

.PHONY: venv demo test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 1; }
	@rm -rf $(VENV)
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/riskinsight demo --output $(OUT)

test: venv
	$(VENV)/bin/python -m tests.setup_check
	$(VENV)/bin/python -m pytest

test-fast: venv
	$(VENV)/bin/python -m pytest -m "not spark and not airflow and not browser and not slow"

lint: venv
	$(VENV)/bin/ruff check --select F,E9 jobs transforms expectations reports benchmarks airflow_dags tests

bench: venv
	$(VENV)/bin/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT)
