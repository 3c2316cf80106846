# MedFleet: two commands do all set-up on a fresh machine.
#   make demo   - create .venv, install, run the 3-site federated CNN simulation
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
# CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint system-deps clean

$(BIN)/.medfleet-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Debian tools the tests use (DICOM validator, compose file checker, podman and what the
# container test builds with); skipped when not root.
system-deps:
	@bash .ci/system-deps.sh

demo: $(BIN)/.medfleet-installed
	FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 \
	$(BIN)/medfleet sim --sites 3 --rounds 20 --local-epochs 2 --data runs/demo/data --out runs/demo

test: $(BIN)/.medfleet-installed system-deps
	FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 \
	$(BIN)/python -m pytest -q -ra -n 4 --dist loadscope --durations=30 tests

lint: $(BIN)/.medfleet-installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

clean:
	rm -rf $(VENV) runs
