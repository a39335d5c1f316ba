# Shrek: `make run` runs the main job, `make test` the test suite.
# Both create .venv on first use (python3 -m venv, then the pinned dependencies).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/shrek run

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The canary bento (ALS stable, LightFM candidate) of the latest export; the ALS bento alone
# when the store has no LightFM model (not exported, or blocked by the fairness gate).
serve: $(STAMP)
	@candidate=$${SHREK_CANDIDATE_MODEL:-shrek-lightfm:latest}; \
	if $(VENV)/bin/bentoml models get "$$candidate" >/dev/null 2>&1; then \
		target=bentos.canary.service:ShrekCanary; \
	else \
		echo "make serve: $$candidate is not in the model store (not exported, or blocked by" \
			"the fairness gate): serving the ALS bento alone, without a canary" >&2; \
		target=bentos.als.service:ShrekALS; \
	fi; \
	exec $(VENV)/bin/bentoml serve $$target --host 127.0.0.1 --port 3000

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) reports/runs reports/latest
