# One command each: `make demo` runs the main job, `make test` runs every test.
# Both create .venv and install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
LOGDIR ?= runs
PORT ?= 6006
# TensorBoard listens on this machine only unless HOST says otherwise (HOST=0.0.0.0: every interface).
HOST ?= 127.0.0.1

.PHONY: setup browser frontend lint test demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e ".[dev,torch,jax,yaml,integrations]"
	touch $@

# Debian's Chromium for the browser tests (needs root; CI runs as root).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (browser tests will skip)"; fi; }

# Rebuild the Health tab's bundle from frontend/ and run its unit tests.
frontend:
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build && npm run --silent typecheck && npm test --silent

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: setup browser frontend lint
	@git diff --quiet -- tb_plugin/static/index.js 2>/dev/null || { \
	  echo "tb_plugin/static/index.js differs from a fresh build of frontend/: commit the rebuilt bundle"; exit 1; }
	$(PY) -m pytest -q -p no:cacheprovider

demo: setup
	$(PY) examples/jepa_train.py --logdir $(LOGDIR) --all
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --port $(PORT) --host $(HOST)

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) frontend/node_modules runs test-artifacts
