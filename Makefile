# ragft: the two commands people need are `make report` and `make test`. Each sets up .venv first (skipped when done).
SHELL := /bin/bash
PY := .venv/bin/python
PROFILE ?= workshop

.PHONY: setup models report publish final final-train test test-fast lab data lint clean-reports

setup:  ## create/update .venv with everything (torch CPU first, then ragft[dev]); idempotent
	@bash scripts/setup_env.sh

models: setup  ## verify the model files and convert SmolLM2 once into the user cache
	@$(PY) -c "from ragft.generation import models; from ragft.retrieval import embeddings; [print(r) for r in models.describe()]; models.ensure_converted('smollm2-135m'); embeddings.load_embedder(); print('models ready')"

report: models  ## run every notebook (PROFILE=workshop) into reports/ with an HTML index
	@$(PY) scripts/build_report.py --profile $(PROFILE)

publish: models  ## run every notebook (PROFILE=workshop), then write docs/results.md and docs/figures/ from that run
	@$(PY) scripts/build_report.py --profile $(PROFILE) --publish

# The locked test, once per release (docs/protocol.md): claims/final.json must be committed first; AGAIN="reason" reruns.
final: models  ## run notebook 05 in the research profile on the locked test split and decide claims/final.json (once)
	@$(PY) scripts/final.py $(if $(AGAIN),--again "$(AGAIN)")

final-train: models  ## the stage before `make final`: train its adapters into the cache (dev and documents only; resumable)
	@$(PY) scripts/final.py --train

# Two workers, one test file each at a time, one math thread each (two workers x two threads would oversubscribe 2 cores);
# the two notebook files first, in the order tests/conftest.py collects them (--no-loadscope-reorder).
test: models  ## the whole test suite: unit tests + every notebook in the smoke profile (+ browser test)
	@bash scripts/install_browser.sh
	@OMP_NUM_THREADS=1 $(PY) -m pytest -v -n 2 --dist loadfile --no-loadscope-reorder --durations=15

test-fast: setup  ## unit tests only (no notebooks, no model-heavy tests)
	@$(PY) -m pytest -q -m "not notebooks and not slow and not browser"

lab: setup  ## JupyterLab with this environment's kernel and working widgets
	@.venv/bin/jupyter lab notebooks/

data: setup  ## rebuild data/ from the real NumPy wheels (needs PyPI)
	@$(PY) -m ragft.builders all

lint: setup
	@.venv/bin/ruff check ragft tests scripts benchmarks notebooks

clean-reports:
	rm -rf reports/
