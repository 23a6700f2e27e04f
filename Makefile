# Everything runs from a project virtual environment that `make` creates and keeps in .venv/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
CACHE  ?= .cache
TARGET ?= cpu
PYTEST_ARGS ?=

.PHONY: demo test unit e2e serve checkpoints repo bench clean

$(STAMP): pyproject.toml
	@command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server >/dev/null; } \
		|| { echo "redis-server is needed by the tests: install Debian's redis-server package" >&2; exit 1; }
	@command -v promtool >/dev/null \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } \
		|| { echo "promtool is needed by the tests: install Debian's prometheus package" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,load,export]'
	@rm -f $(VENV)/.installed-* && touch $@

## demo: fresh machine -> tiny checkpoints -> tritonserver -> one request through every step, printed
demo: $(STAMP)
	$(PY) -m clients.demo --cache $(CACHE)

## test: unit tests, then end-to-end tests against a real tritonserver
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

## checkpoints: the tiny random-weight Qwen3 / Qwen2.5-VL checkpoints (cached in $(CACHE))
checkpoints: $(STAMP)
	$(PY) -m build.tiny_checkpoints --out $(CACHE)/checkpoints

## repo: render the model repository for TARGET (cpu | a10 | a800)
repo: $(STAMP)
	$(PY) -m build.render --target $(TARGET) --out $(CACHE)/model_repository-$(TARGET)

## bench: CPU ladder (locust over gRPC; cover cache and store off, since the workload pool repeats), overhead, capacity
bench: $(STAMP)
	$(PY) -m bench.runner --ladder 1,2,4 --step-seconds 20 --set cover_cache.enabled=false --set 'cover_store.url=""' --out bench/out/ladder
	$(PY) -m bench.overhead --out bench/out/overhead
	$(PY) -m bench.capacity

## serve: tritonserver in the foreground on the CPU repository (RERANKER_CKPT / VLM_CKPT for real ones)
serve: $(STAMP)
	$(PY) -m server --target cpu --cache $(CACHE)

clean:
	rm -rf $(CACHE) bench/out
