# Quick start: `make run` (train + export into export/) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

# Beside a checkout of the workplace, MNIST is in ../shared/data/mnist; elsewhere lenet-edge looks in
# $LENET_EDGE_DATA, the Keras cache, then the Keras download.
SHARED_MNIST := $(wildcard ../shared/data/mnist)
ifneq ($(SHARED_MNIST),)
export LENET_EDGE_DATA ?= $(abspath $(SHARED_MNIST))
endif

.PHONY: setup run test lint clean arm64-emu

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

run: setup
	$(BIN)/lenet-edge run $(ARGS)

# The emulated ARM64 target (needs root and: apt-get install qemu-user qemu-user-static debootstrap);
# cached in ~/.cache/lenet-edge/arm64, so a second call returns at once.
arm64-emu: setup
	$(BIN)/lenet-edge target setup arm64-emu

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
