# Two commands matter: `make up` (set up this host and converge the lab) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
COLLECTION_LINK := build/collections/ansible_collections/adelie/fleet
SANITY_DIR := /var/tmp/adelie-fleet-sanity/ansible_collections/adelie/fleet
INVENTORY ?= inventories/lab
export PIP_CERT ?= /etc/ssl/certs/ca-certificates.crt
export ANSIBLE_FORCE_COLOR ?= 0
export PATH := $(BIN):$(PATH)

.PHONY: test-suite help deps test-deps venv collections tools up converge check test lint sanity unit integration molecule bench verify clean

help:
	@echo "make up    - install what this host needs, then converge the lab fleet (site.yml)"
	@echo "make test  - lint, sanity, unit, integration (real LXD) and molecule tests"
	@echo "make bench - timings of the lab fleet (it recreates the containers) and the goals they meet or miss"
	@echo "make check - site.yml --check --diff against the converged fleet"
	@echo "make tools - promtool and amtool for the unit tests, unpacked under build/tools"

# Debian packages the controller needs (shellcheck: ansible-test sanity lints the roles' scripts;
# ssh: the onboarding test logs in as the newcomer; python3-apt: see the venv below). LXD itself is installed by the lxd_host role.
CONTROLLER_PACKAGES := python3 python3-venv python3-pip python3-apt git shellcheck openssh-client
deps:
	@dpkg -s $(CONTROLLER_PACKAGES) >/dev/null 2>&1 \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(CONTROLLER_PACKAGES); }

# What only the tests need: a real headless browser opens the nightly run's HTML report.
TEST_PACKAGES := chromium-headless-shell
test-deps:
	@dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1 \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(TEST_PACKAGES); }

# The venv also sees Debian's apt bindings (python3-apt is not on PyPI), and nothing else of Debian's:
# the apt module runs in this interpreter on the LXD host (local connection), and without them it
# re-spawns itself under /usr/bin/python3, which fails under Mitogen (mitogen-hq/mitogen#849).
# Mitogen's own strategy plugins are linked for bench/executors.sh (Mitogen as shipped, beside ansible.cfg's).
$(VENV)/.installed: requirements.txt | deps
	@$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	@rm -rf $(VENV)/python-apt && mkdir -p $(VENV)/python-apt && ln -s /usr/lib/python3/dist-packages/apt \
	  /usr/lib/python3/dist-packages/apt_pkg.cpython-*.so /usr/lib/python3/dist-packages/apt_inst.cpython-*.so $(VENV)/python-apt/
	@echo "$(CURDIR)/$(VENV)/python-apt" >$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/debian-python-apt.pth
	@$(BIN)/python -c 'import apt_pkg' || { echo "the venv's python cannot load Debian's apt_pkg (python3-apt)"; exit 1; }
	@ln -sfn $$($(BIN)/python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')/plugins/strategy $(VENV)/mitogen-strategy
	@touch $@

venv: $(VENV)/.installed $(COLLECTION_LINK)

# adelie.fleet resolves to this checkout through this link (ansible.cfg's collections_path).
$(COLLECTION_LINK):
	@mkdir -p $(dir $@) && ln -sfn ../../../.. $@

# The bundled collections satisfy requirements.yml, so this is offline-safe ("Nothing to do").
collections: venv
	$(BIN)/ansible-galaxy collection install -r requirements.yml

# make up and make test append a line to $(TIMINGS) (ISO start date, seconds, exit code; for up,
# fresh=yes when the lxd command was missing as it began: a fresh machine); make bench's summary
# prints the last ones. `make clean` removes it with the rest of build/.
TIMINGS := build/timings/make.log

up:
	@began=$$(date -Iseconds); start=$$(date +%s); \
	  if command -v lxd >/dev/null 2>&1 || command -v incus >/dev/null 2>&1; then fresh=no; else fresh=yes; fi; \
	  $(MAKE) --no-print-directory converge; rc=$$?; \
	  mkdir -p $(dir $(TIMINGS)) && echo "$$began target=up seconds=$$(( $$(date +%s) - start )) exit=$$rc fresh=$$fresh" >>$(TIMINGS); \
	  exit $$rc

converge: collections
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml

check: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml --check --diff

# The whole suite, then its wall time (goal: 20 minutes on a 2-core machine; make bench prints the last).
test:
	@began=$$(date -Iseconds); start=$$(date +%s); $(MAKE) --no-print-directory test-suite; rc=$$?; \
	  seconds=$$(( $$(date +%s) - start )); echo "make test: wall time $$seconds s (exit $$rc)"; \
	  mkdir -p $(dir $(TIMINGS)) && echo "$$began target=test seconds=$$seconds exit=$$rc" >>$(TIMINGS); \
	  exit $$rc

test-suite: lint sanity unit integration molecule

lint: venv
	$(BIN)/ansible-lint --offline

# ansible-test wants the collection under ansible_collections/<ns>/<name>, and downloads a pip
# bootstrap script from a host unreachable here: a stand-in is put in its cache. The copy lives
# outside this checkout, where git would hide it (build/ is ignored).
sanity: venv
	@mkdir -p ~/.ansible/test/cache && cp tests/sanity/get_pip_standin.py ~/.ansible/test/cache/get_pip_24_2.py
	@rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)
	@git ls-files -co --exclude-standard | grep -v '^build/' | tar -cf - -T - | tar -xf - -C $(SANITY_DIR)
	@# Collections we import from (the connection plugin extends community.general's) sit beside it.
	@ln -sfn $$($(BIN)/python -c 'import ansible_collections.community as c; print(c.__path__[0])') $(SANITY_DIR)/../../community
	cd $(SANITY_DIR) && $(BIN)/ansible-test sanity --local --python 3.11 --color no

# promtool and amtool for the unit tests of the alert rules and of Alertmanager's configuration:
# Debian's prometheus and prometheus-alertmanager packages, downloaded and unpacked under
# build/tools, not installed (they carry daemons this controller must not run). The package lists
# are refreshed only when apt cannot find the packages in them (none yet, or stale ones: 404).
TOOLS_DIR := build/tools
TOOLS_PACKAGES := prometheus prometheus-alertmanager
TOOLS_STAMP := $(TOOLS_DIR)/.unpacked
TOOLS_BINARIES := $(TOOLS_DIR)/usr/bin/promtool $(TOOLS_DIR)/usr/bin/amtool
# A stamp without its binaries (a deleted file) is unpacked again.
tools:
	@for tool in $(TOOLS_BINARIES); do [ -x "$$tool" ] || rm -f $(TOOLS_STAMP); done
	@$(MAKE) -s --no-print-directory $(TOOLS_STAMP)

$(TOOLS_STAMP):
	@rm -rf $(TOOLS_DIR)/debs && mkdir -p $(TOOLS_DIR)/debs
	@cd $(TOOLS_DIR)/debs && if ! apt-get download -q $(TOOLS_PACKAGES) 2>download.err; then \
	  cat download.err >&2; \
	  grep -qE 'Unable to locate package|Can.t select|404' download.err || exit 1; \
	  echo "tools: package lists missing or stale, refreshing them"; \
	  apt-get update -q && apt-get download -q $(TOOLS_PACKAGES); \
	fi
	@for deb in $(TOOLS_DIR)/debs/*.deb; do dpkg-deb -x "$$deb" $(TOOLS_DIR) || exit 1; done
	$(TOOLS_DIR)/usr/bin/promtool --version 2>&1 | head -1
	$(TOOLS_DIR)/usr/bin/amtool --version 2>&1 | head -1
	@rm -rf $(TOOLS_DIR)/debs
	@touch $@

unit: venv tools
	$(BIN)/python -m pytest -q -n auto tests/unit

integration: venv test-deps
	$(BIN)/python -m pytest -q -x --durations=20 tests/integration

# Needs the LXD host and image that the integration tests converge first (make test runs it after them).
molecule: venv
	$(BIN)/molecule test -s default

# Looks at an existing fleet (read-only; FLEET_VERIFY_WRITE=1 also re-runs the node layer).
verify: venv
	FLEET_INVENTORY=$(INVENTORY) $(BIN)/python -m pytest -q tests/integration/test_nodes.py

# bench/converge.sh also runs bench/apt_floor.sh (the node layer's floor) and bench/executors.sh
# (the idempotent site.yml under three executors); bench/summary.py prints the goals last.
bench: venv
	bench/converge.sh
	bench/sweep_scale.sh
	bench/deploy.sh
	$(BIN)/python bench/plan_scale.py
	$(BIN)/python bench/summary.py

clean:
	rm -rf build .venv
