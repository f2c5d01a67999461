# vmrepair: `make demo` and `make test` work on a fresh Debian 12 machine as root.
# Every target that needs the machine prepared depends on `setup`, which is idempotent and fast when
# everything is already in place (template images are cached by recipe hash).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup host-packages daemons venv image demo test test-unit test-integration test-nightly \
        lint bench clean wheel install uninstall

setup: host-packages daemons venv image

host-packages:
	@scripts/host-packages.sh

daemons: host-packages
	@scripts/start-daemons.sh

venv: $(STAMP)

# libvirt-python builds from source against libvirt-dev (needs pkg-config and gcc: host-packages).
$(STAMP): pyproject.toml | host-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The default template (troubleshooting VMs and most patients) with its warm state, then the services
# patient of the host-layer tests (tests/integration/services.py). Each build is a no-op while its
# recipe hash is current; the services patient boots cold, so it needs no warm state.
SERVICES_TEMPLATE := debian-12-services

image: venv daemons
	$(BIN)/vmrepair image build
	$(BIN)/vmrepair image warm
	$(BIN)/vmrepair image build $(SERVICES_TEMPLATE)

FAULT ?= nginx-config

demo: setup
	$(BIN)/vmrepair demo $(FAULT)

lint: venv
	$(BIN)/ruff check orchestrator tests bench
	$(BIN)/mypy

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: setup
	$(BIN)/pytest -q -m "integration and not nightly" tests/integration

# The VM tests and the tests without a VM run side by side (scripts/test.sh says why).
test: setup lint
	scripts/test.sh $(BIN)

test-nightly: setup
	$(BIN)/pytest -q tests

bench: setup
	$(BIN)/python bench/vm_lifecycle.py
	$(BIN)/python bench/mttr.py
	$(BIN)/python bench/daemon_idle.py
	$(BIN)/python bench/layers.py
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/cli_start.py

# `make install`: vmrepair for a server, outside this checkout (scripts/install.sh says what goes
# where; DESTDIR= stages it elsewhere). The wheel is built offline with the dev venv's backend.
DIST := build/dist

wheel: venv
	rm -rf $(DIST)
	PYTHON=$(BIN)/python scripts/build-wheel.sh $(DIST)

install: wheel host-packages
	WHEEL=$$(ls $(DIST)/vmrepair-*.whl) scripts/install.sh install

uninstall:
	scripts/install.sh uninstall

clean:
	-$(BIN)/vmrepair vm reap
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
