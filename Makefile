# Quick start: `make run` (train + export into export/) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ARGS   ?=
BUNDLE ?= export

# Beside a checkout of the workplace, MNIST is in ../shared/data/mnist; elsewhere lenet-edge looks in
# $LENET_EDGE_DATA, the Keras cache, then the Keras download.
SHARED_MNIST := $(wildcard ../shared/data/mnist)
ifneq ($(SHARED_MNIST),)
export LENET_EDGE_DATA ?= $(abspath $(SHARED_MNIST))
endif

.PHONY: setup run verify bench test test-fast lint clean arm64-emu npu-tools serve

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev,consumers,mcu]'
	touch $(STAMP)

# The page's in-browser runtimes (onnxruntime-web, LiteRT.js), pinned by package-lock.json. Without npm
# everything else works; `lenet-edge serve` and the browser rows then say what is missing.
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm > /dev/null; then \
		npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "npm not found: the browser page and its tests need Node.js and npm (apt-get install nodejs npm)"; fi

run: setup
	$(BIN)/lenet-edge run $(ARGS)

# The emulated ARM64 target (needs root and: apt-get install qemu-user qemu-user-static debootstrap);
# cached in ~/.cache/lenet-edge/arm64, so a second call returns at once.
arm64-emu: setup
	$(BIN)/lenet-edge target setup arm64-emu

# The NPU tools' own Python (onnxruntime-qnn's QNN libraries, LiteRT's Qualcomm compiler plugin; about 350 MB),
# cached in ~/.cache/lenet-edge: `lenet-edge npu` makes it at first use; this makes it ahead (CI, the tests).
npu-tools: setup
	$(BIN)/python -c "from lenet_edge.npu.env import glue_dir, npu_python; print(npu_python(), glue_dir())"

# The next steps after `make run`, without activating the venv (each finds the MNIST the bundle was made from):
# judge every export again; measure every runtime; draw a digit and let the bundle answer in your browser.
verify: setup
	$(BIN)/lenet-edge verify $(BUNDLE) $(ARGS)

bench: setup
	$(BIN)/lenet-edge bench $(BUNDLE) $(ARGS)

serve: setup
	$(BIN)/lenet-edge serve $(BUNDLE) $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Both tiers: the unit tier over every core, then the slow tier in one process (its trained bundle is made once,
# and what it times or emulates has the machine to itself).
test: lint
	$(BIN)/pytest -m "not slow" -n auto
	$(BIN)/pytest -m slow --durations=15

# The unit tier, 1.5-2 minutes on 2 cores (-n auto: one worker a core): no training (a closed-form
# model's real bundle), no Chromium, qemu, simulator or sshd (tests/conftest.py says what makes a test slow).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -n auto

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache *.egg-info .test-output
