# mcuforge: build, test and flash. `make demo` and `make test` are the two commands
# a fresh Debian 12 machine needs; both run `make setup` first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.setup-stamp
# LCE's interpreter (the oracle for binarized models) is built against NumPy 1.x: it runs from this
# side environment (NumPy only), loaded by deploy/lce_oracle.py in a subprocess.
LCE_VENV := .venv-lce
LCE_STAMP := $(LCE_VENV)/.setup-stamp
APT_PACKAGES := gcc g++ make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
	espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox valgrind
SPEC ?= specs/digits.yaml
DEMO_SPEC ?= specs/keywords.yaml
PYTEST_ARGS ?=

.PHONY: setup apt-packages demo run train test test-fast clean help bench-binary search-cost-model

help:
	@echo "make demo         run the main job on the default spec, $(DEMO_SPEC) (installs what it needs)"
	@echo "make run SPEC=specs/digits.yaml   the main job on any spec"
	@echo "make test         run every test, slow ones included (what CI runs)"
	@echo "make test-fast    skip tests marked slow"
	@echo "make setup        create .venv, install mcuforge with its dev, npu, voices, binary, search and federated extras (and larq), .venv-lce and the Debian packages"
	@echo "make train SPEC=specs/digits.yaml   train one spec"
	@echo "make search-cost-model   refit the search's latency model on QEMU counts (after an engine change)"

setup: apt-packages $(SETUP_STAMP) $(LCE_STAMP)

# Installs only what is missing: a no-op in seconds when everything is there.
apt-packages:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages: $$missing"; \
			echo "install them as root: apt-get update && apt-get install -y $$missing"; exit 1; \
		fi; \
	fi

# Reinstalls the Python package only when pyproject.toml changed. pip prints errors
# only (-qq): its warnings about a machine's index settings and setuptools' notice
# on editable installs are not for someone setting up.
$(SETUP_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "mcuforge needs Python 3.11; set PYTHON=python3.11")'
	@echo "installing mcuforge and its Python packages into $(VENV) (a few minutes the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --upgrade pip
	@$(BIN)/pip install -qq --no-warn-conflicts -e '.[dev,npu,voices,binary,search,federated]'
	@$(BIN)/pip install -qq --no-deps 'larq==0.14.*'
	@touch $@

$(LCE_STAMP):
	@echo "creating $(LCE_VENV), the side environment of LCE's interpreter (NumPy 1.x)"
	@test -x $(LCE_VENV)/bin/python || $(PYTHON) -m venv $(LCE_VENV)
	@$(LCE_VENV)/bin/pip install -qq 'numpy>=1.26,<2'
	@touch $@

demo: setup
	$(BIN)/mcuforge run $(DEMO_SPEC)

run: setup
	$(BIN)/mcuforge run $(SPEC)

train: setup
	$(BIN)/mcuforge train $(SPEC)

search-cost-model: setup
	$(BIN)/python bench/search_cost_model.py

# Tests run on TEST_WORKERS processes (one module per worker), then the `alone` tests one at a time.
# pytest's status 5 (no test selected, e.g. -k picked only one part) is not a failure.
TEST_WORKERS ?= 2
define pytest_in_two_parts
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not alone and $(1)" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m "alone and $(1)" $(PYTEST_ARGS) || [ $$? -eq 5 ]
endef

test: setup
	$(call pytest_in_two_parts,not hardware)

test-fast: setup
	$(call pytest_in_two_parts,not slow and not hardware)

# Binarized networks: digits through `mcuforge run`, binary convolution speed on qemu-m4 (README "Binarized networks (Larq)").
bench-binary: setup
	nice -n 5 $(BIN)/python bench/binary.py

clean:
	rm -rf build

-include firmware/firmware.mk
