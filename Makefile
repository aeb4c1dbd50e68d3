# asyncloop: build, test and benchmark on every installed CPython 3.10-3.13.
#
#   make test    install what is missing (libuv headers, virtualenvs), build,
#                run the whole test suite on each CPython
#   make bench   build, run the benchmark suite and the tutorial examples on
#                asyncio, uvloop, rloop and asyncloop, then the network, UDP,
#                pipe, sendfile, subprocess and TLS benchmarks; print the
#                tables. VERSIONS="3.10 3.13": the core suite on each of those
#                CPythons and a ratio table per version
#   make lint    install what is missing (clang-format, clang-tidy, ruff, mypy),
#                then clang-format, clang-tidy, a -Werror build and stubtest on
#                each CPython, and ruff; fails on any finding
#
# ASYNCLOOP_BUILD=release|debug|sanitize selects the C build mode.

SHELL := /bin/bash
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
VERSIONS ?= 3.10 3.11 3.12 3.13
BENCH_VERSION ?= 3.12
VENVS := .venvs
ASYNCLOOP_BUILD ?= release
export ASYNCLOOP_BUILD

# The interpreter for a minor version: pyenv's newest, else one on PATH.
python_for = $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python3))),$(shell command -v python$(1)))

.PHONY: all test bench bench-tools deps libuv venvs build install-check clean format sanitize-test debug-test \
	lint lint-tools

all: build

libuv:
	@if ! pkg-config --exists libuv 2>/dev/null; then \
	  echo "libuv headers missing: installing libuv1-dev with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libuv1-dev pkg-config; \
	fi

$(VENVS)/%/.ready: tests/requirements.txt
	@py="$(call python_for,$*)"; \
	if [ -z "$$py" ]; then echo "CPython $* not found"; exit 1; fi; \
	echo "venv $* from $$py"; \
	[ -x $(VENVS)/$*/bin/python ] || $$py -m venv $(VENVS)/$*; \
	$(VENVS)/$*/bin/pip install -q --disable-pip-version-check setuptools wheel -r tests/requirements.txt && \
	touch $@

venvs: $(foreach v,$(VERSIONS),$(VENVS)/$(v)/.ready)

deps: libuv venvs

build: deps
	@for v in $(VERSIONS); do \
	  echo "build ($$ASYNCLOOP_BUILD) for $$v"; \
	  $(VENVS)/$$v/bin/python setup.py -q build_ext --inplace --force >/dev/null || exit 1; \
	done

# `pip install .` into a fresh virtualenv on each CPython, then import it.
install-check: deps
	@for v in $(VERSIONS); do \
	  d=$$(mktemp -d); py="$(call python_for,$$v)"; \
	  py=$$($(VENVS)/$$v/bin/python -c 'import sys; print(sys._base_executable)'); \
	  $$py -m venv $$d/venv && \
	  $$d/venv/bin/pip install -q --disable-pip-version-check . && \
	  (cd $$d && ./venv/bin/python -c "import asyncio, asyncloop; print('pip install . ok on', __import__('sys').version.split()[0], asyncloop.__libuv_version__); assert asyncloop.run(asyncio.sleep(0, 7)) == 7") || { rm -rf $$d; exit 1; }; \
	  rm -rf $$d; \
	done

test: build install-check
	@set -e; for v in $(VERSIONS); do \
	  echo "=== pytest on CPython $$v ($$ASYNCLOOP_BUILD build)"; \
	  PYTHONPATH=$(CURDIR) $(VENVS)/$$v/bin/python -m pytest -q -p no:cacheprovider tests; \
	done

debug-test:
	$(MAKE) test ASYNCLOOP_BUILD=debug

# AddressSanitizer + UBSan: the runtime must be preloaded into python.
sanitize-test: deps
	@set -e; v=$(BENCH_VERSION); \
	ASYNCLOOP_BUILD=sanitize $(VENVS)/$$v/bin/python setup.py -q build_ext --inplace --force >/dev/null; \
	asan=$$(gcc -print-file-name=libasan.so); ubsan=$$(gcc -print-file-name=libubsan.so); \
	LD_PRELOAD="$$asan $$ubsan" ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc \
	  PYTHONPATH=$(CURDIR) $(VENVS)/$$v/bin/python -m pytest -q -p no:cacheprovider tests; \
	$(VENVS)/$$v/bin/python setup.py -q build_ext --inplace --force >/dev/null

# wrk (the HTTP load generator of benchmarks/net.py) from Debian when missing.
bench-tools:
	@if ! command -v wrk >/dev/null; then \
	  echo "wrk missing: installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; \
	fi
	@if ! pkg-config --exists libssl 2>/dev/null; then \
	  echo "OpenSSL headers missing (benchmarks/tls_client.c): installing libssl-dev with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libssl-dev; \
	fi

# VERSIONS given to make (make bench VERSIONS="3.10 3.13"): the core suite
# on each, then asyncloop's ratios per version; otherwise BENCH_VERSION only.
BENCH_VERSIONS = $(if $(filter command line environment,$(origin VERSIONS)),$(VERSIONS),$(BENCH_VERSION))

bench: build bench-tools
	@for v in $(BENCH_VERSIONS); do \
	  $(VENVS)/$$v/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements.txt || exit 1; \
	done
	@# byte-compiled, as pip leaves an installed package (uvloop's is)
	@$(VENVS)/$(BENCH_VERSION)/bin/python -m compileall -q asyncloop
	@if [ $(words $(BENCH_VERSIONS)) = 1 ]; then \
	  PYTHONPATH=$(CURDIR) $(VENVS)/$(BENCH_VERSIONS)/bin/python benchmarks/run.py $(BENCH_ARGS); \
	else \
	  rc=0; files=""; mkdir -p benchmarks/results; \
	  for v in $(BENCH_VERSIONS); do \
	    echo "=== core benchmarks on CPython $$v"; f=benchmarks/results/core-$$v.json; rm -f $$f; \
	    PYTHONPATH=$(CURDIR) $(VENVS)/$$v/bin/python benchmarks/run.py --no-examples --save-as $$f \
	      $(BENCH_ARGS) || rc=1; \
	    [ -f $$f ] && files="$$files $$f"; \
	  done; \
	  echo "=== asyncloop's ratios per CPython"; \
	  $(VENVS)/$(BENCH_VERSION)/bin/python benchmarks/run.py --summary $$files $(filter --markdown,$(BENCH_ARGS)); \
	  exit $$rc; \
	fi
	PYTHONPATH=$(CURDIR) $(VENVS)/$(BENCH_VERSION)/bin/python benchmarks/net.py $(NET_BENCH_ARGS)
	@# UDP echo, pipe throughput, sendfile, subprocess spawning, TLS echo
	@for b in udp pipes sendfile spawn tls; do \
	  [ -f benchmarks/$$b.py ] || continue; \
	  echo "=== benchmarks/$$b.py"; \
	  PYTHONPATH=$(CURDIR) $(VENVS)/$(BENCH_VERSION)/bin/python benchmarks/$$b.py || exit 1; \
	done

format:
	clang-format -i src/*.c src/*.h

# --- lint ---------------------------------------------------------------
LINT_PY := $(VENVS)/$(BENCH_VERSION)/bin/python
PY_SOURCES := asyncloop tests benchmarks examples
# clang-tidy compiles as setup.py does: CPython's headers, libuv's cflags,
# C11, and the mode's defines (release: NDEBUG, from CPython's CFLAGS; debug
# and sanitize: asserts on, ASYNCLOOP_DEBUG).
TIDY_DEFINES = $(if $(filter release,$(ASYNCLOOP_BUILD)),-DNDEBUG,-UNDEBUG -DASYNCLOOP_DEBUG=1)

lint-tools: libuv venvs
	@missing=""; \
	command -v clang-format >/dev/null || missing="$$missing clang-format"; \
	command -v clang-tidy >/dev/null || missing="$$missing clang-tidy"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@# ruff on the lint interpreter; mypy (for stubtest) on each CPython
	@$(LINT_PY) -m ruff --version >/dev/null 2>&1 || \
	  $(VENVS)/$(BENCH_VERSION)/bin/pip install -q --disable-pip-version-check ruff
	@for v in $(VERSIONS); do \
	  $(VENVS)/$$v/bin/python -c 'import mypy.stubtest' 2>/dev/null || \
	  $(VENVS)/$$v/bin/pip install -q --disable-pip-version-check mypy || exit 1; \
	done

lint: lint-tools
	@set -eo pipefail; \
	echo "lint: clang-format"; \
	clang-format --dry-run --Werror src/*.c src/*.h; \
	echo "lint: clang-tidy ($$ASYNCLOOP_BUILD)"; \
	inc=$$($(LINT_PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	clang-tidy --quiet src/*.c -- -I"$$inc" $$(pkg-config --cflags libuv) -std=c11 $(TIDY_DEFINES) \
	  2>&1 | { grep -v '^[0-9]* warnings generated\.$$' || true; }; \
	echo "lint: ruff"; \
	$(LINT_PY) -m ruff check --quiet $(PY_SOURCES); \
	for v in $(VERSIONS); do \
	  echo "lint: -Werror build ($$ASYNCLOOP_BUILD) and stubtest on $$v"; \
	  ASYNCLOOP_WERROR=1 $(VENVS)/$$v/bin/python setup.py -q build_ext --inplace --force >/dev/null; \
	  PYTHONPATH=$(CURDIR) $(VENVS)/$$v/bin/python -m mypy.stubtest asyncloop; \
	done

clean:
	rm -rf build asyncloop/*.so *.egg-info $(VENVS)
