# RIIM — two commands on a fresh machine:  make run   |   make test
# Every step says what it does; a missing prerequisite stops with a message, not a traceback.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
VENDOR := web/static/vendor
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: setup run serve worker test test-fast models clean-models help mlflow-ui
help:
	@echo "make run    set up, build the default model if needed, serve http://$(HOST):$(PORT)"
	@echo "make serve  production serving with gunicorn (one worker per core, RIIM_WORKERS=N) and a job worker"
	@echo "make worker one more worker for the training jobs queued by make serve"
	@echo "make test   set up and run the whole test suite"
	@echo "make test-fast  set up and run the tests that need no TensorFlow (under 2 minutes)"
	@echo "make setup  only the set-up (idempotent)"

setup: $(BIN)/.installed $(VENDOR)/.vendored system-packages

$(BIN)/.installed: constraints.txt setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "ERROR: $(PYTHON) not found. Install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv)."; exit 1; }
	@echo "==> creating the virtual environment $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "ERROR: could not create $(VENV) (apt-get install python3.11-venv?)"; exit 1; }
	@echo "==> installing RIIM with the serving, training and test dependencies (pinned in constraints.txt)"
	@$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[train,dev]' || { echo "ERROR: pip install failed (see above)"; exit 1; }
	@echo "==> installing packages that must skip their dependency pins: foolbox (sample photos), tensorflowjs"
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps foolbox==3.3.4 tensorflowjs==4.22.0 || { echo "ERROR: pip install --no-deps failed"; exit 1; }
	@touch $@

$(VENDOR)/.vendored: web/package.json web/package-lock.json Makefile
	@command -v npm >/dev/null || { echo "ERROR: npm not found. Install Node.js 20 and npm (apt-get install nodejs npm)."; exit 1; }
	@echo "==> vendoring TF.js 4.22 (+ wasm backend), Bootstrap and Chart.js from npm into $(VENDOR)"
	@cd web && npm ci --silent --no-audit --no-fund --ignore-scripts || { echo "ERROR: npm ci failed"; exit 1; }
	@mkdir -p $(VENDOR)/tfjs $(VENDOR)/bootstrap
	@cp web/node_modules/@tensorflow/tfjs/dist/tf.min.js $(VENDOR)/tfjs/
	@cp web/node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js web/node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm $(VENDOR)/tfjs/
	@# the Analyze page's Web Worker: TF.js core + converter + wasm backend only (layers only for old exports)
	@cp web/node_modules/@tensorflow/tfjs-core/dist/tf-core.es2017.min.js \
	    web/node_modules/@tensorflow/tfjs-converter/dist/tf-converter.es2017.min.js \
	    web/node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.es2017.min.js \
	    web/node_modules/@tensorflow/tfjs-layers/dist/tf-layers.es2017.min.js $(VENDOR)/tfjs/
	@cp web/node_modules/bootstrap/dist/css/bootstrap.min.css web/node_modules/bootstrap/dist/js/bootstrap.bundle.min.js $(VENDOR)/bootstrap/
	@mkdir -p $(VENDOR)/chartjs
	@cp web/node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chartjs/
	@touch $@

# Debian packages: chromium (browser tests), darknet (a real dog photo), dataset-fashion-mnist (training data),
# redis-server (rate limits shared by the gunicorn workers). Installed only when missing.
system-packages:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	test -f /usr/share/darknet/data/dog.jpg || missing="$$missing darknet"; \
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || { echo "ERROR: apt-get install$$missing failed"; exit 1; }; \
	  else echo "WARNING: missing Debian packages:$$missing (run as root: apt-get install$$missing); browser, photo and shared-limit tests will fail"; fi; \
	fi

models: setup
	@echo "==> the default model \"animals\" (built once from the ImageNet weights, then reused)"
	@$(BIN)/riim models default

run: models
	@echo "==> serving RIIM on http://$(HOST):$(PORT) (Ctrl-C to stop)"
	@$(BIN)/riim serve --host $(HOST) --port $(PORT)

# Production serving: gunicorn, one worker per core (RIIM_WORKERS=N to choose), production config.
# The secret key comes from RIIM_SECRET_KEY or instance/config.py, else the app makes instance/secret_key once.
# Session cookies are Secure: behind plain HTTP (a classroom LAN) add RIIM_SESSION_COOKIE_SECURE=0.
# Graceful reload (new code or config, no dropped request): kill -HUP $$(cat instance/gunicorn.pid)
# Rate limits are shared by all workers in Redis: RIIM_RATELIMIT_STORAGE_URI=redis://host:6379 names one;
# otherwise, when redis-server is installed, a private one runs as long as gunicorn does, on a socket in
# instance/ that only you can open (no port); without it each worker counts on its own (a warning says so).
# Training jobs wait in the same Redis (RQ) for RIIM_JOB_WORKERS (default 1) `riim worker` processes started
# here; `make worker` adds one more (RIIM_JOBS_QUEUE_URL, else this private Redis). Without Redis (and with
# `make run`) the web process runs one job at a time itself: a second one gets 409.
serve: models
	@mkdir -p instance
	@uri="$$RIIM_RATELIMIT_STORAGE_URI"; sock="$(CURDIR)/instance/redis.sock"; \
	if [ -n "$$uri" ]; then echo "==> rate limits shared by all workers in $$uri"; \
	elif command -v redis-server >/dev/null; then \
	  rm -f "$$sock"; \
	  redis-server --port 0 --unixsocket "$$sock" --unixsocketperm 700 --save '' --appendonly no \
	    --logfile "$(CURDIR)/instance/redis.log" & redis_pid=$$!; trap 'kill $$redis_pid 2>/dev/null' EXIT; \
	  for try in $$(seq 50); do redis-cli -s "$$sock" ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	  redis-cli -s "$$sock" ping >/dev/null 2>&1 || { echo "ERROR: redis-server did not start (see instance/redis.log)"; exit 1; }; \
	  uri="redis+unix://$$sock"; echo "==> rate limits shared by all workers: a private redis-server on $$sock"; \
	  export RIIM_JOBS_QUEUE_URL="$${RIIM_JOBS_QUEUE_URL:-unix://$$sock}"; \
	else uri="memory://"; \
	  echo "WARNING: redis-server is not installed: each gunicorn worker counts rate limits on its own, so a client gets up to (workers x) the limits (apt-get install redis-server, or RIIM_RATELIMIT_STORAGE_URI=redis://host:6379)"; \
	fi; \
	if [ -n "$$RIIM_JOBS_QUEUE_URL" ]; then \
	  for n in $$(seq $${RIIM_JOB_WORKERS:-1}); do $(BIN)/riim worker >> instance/worker.log 2>&1 & workers="$$workers $$!"; done; \
	  trap 'kill $$redis_pid $$workers 2>/dev/null' EXIT; \
	  echo "==> training jobs queue in Redis for $${RIIM_JOB_WORKERS:-1} riim worker(s) (log: instance/worker.log; more: make worker)"; \
	fi; \
	echo "==> serving RIIM with gunicorn on http://$(HOST):$(PORT) (Ctrl-C to stop; reload: kill -HUP \$$(cat instance/gunicorn.pid))"; \
	RIIM_ENV=$${RIIM_ENV:-production} RIIM_RATELIMIT_STORAGE_URI="$$uri" \
	  $(BIN)/gunicorn -c app/gunicorn.conf.py --bind $(HOST):$(PORT) --pid instance/gunicorn.pid

# One more worker for the queued training jobs of `make serve` (on this machine, or on another one that sees
# the same instance folder and database: RIIM_JOBS_QUEUE_URL=redis://host:6379/0).
worker: setup
	@sock="$(CURDIR)/instance/redis.sock"; \
	url="$${RIIM_JOBS_QUEUE_URL:-$$( [ -S "$$sock" ] && echo "unix://$$sock" )}"; \
	[ -n "$$url" ] || { echo "ERROR: no queue: start make serve first, or set RIIM_JOBS_QUEUE_URL=redis://host:6379/0"; exit 1; }; \
	echo "==> riim worker on $$url (Ctrl-C to stop)"; RIIM_JOBS_QUEUE_URL="$$url" $(BIN)/riim worker

test: setup
	@echo "==> running the test suite"
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything that needs no TensorFlow: serving runs a tiny ONNX model (tests/tiny_model.py); a test that
# imports TensorFlow anyway fails (tests/conftest.py).
test-fast: setup
	@echo "==> running the fast tests (no TensorFlow)"
	@$(BIN)/python -m pytest -m "not tensorflow" $(PYTEST_ARGS)

clean-models:
	rm -rf models/store

# MLflow's own web UI over the CNN lab's tracking store (instance/lab/mlflow.db + artifacts). RIIM installs
# mlflow-skinny (tracking client + SQLite store; its `mlflow server` has no UI bundle): the full `mlflow`
# package does not co-install with RIIM's pinned gunicorn, so the UI runs from a venv of its own.
LAB_DIR ?= $(CURDIR)/instance/lab
MLFLOW_VENV ?= $(HOME)/.cache/riim-mlflow-ui
mlflow-ui:
	@if [ ! -x "$(MLFLOW_VENV)/bin/mlflow" ] || [ ! -d "$$($(MLFLOW_VENV)/bin/python -c 'import mlflow, os; print(os.path.dirname(mlflow.__file__))' 2>/dev/null)/server/js/build" ]; then \
	  echo "MLflow's UI needs the full 'mlflow' package, which conflicts with RIIM's pinned gunicorn."; \
	  echo "Install it once in a separate venv (needs the internet or a local package index):"; \
	  echo "  $(PYTHON) -m venv $(MLFLOW_VENV) && $(MLFLOW_VENV)/bin/pip install mlflow==$$($(BIN)/python -c 'import mlflow; print(mlflow.__version__)')"; \
	  echo "then run make mlflow-ui again. Without it, the lab page http://$(HOST):$(PORT)/lab reads the same runs."; \
	  exit 1; fi
	@echo "==> MLflow UI on http://$(HOST):5001 over $(LAB_DIR) (Ctrl-C to stop)"
	@$(MLFLOW_VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(LAB_DIR)/mlflow.db" --host $(HOST) --port 5001
