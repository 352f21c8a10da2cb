# Everyday entry points. `make test` is what CI runs (.ci/run): it installs what a bare Debian
# machine lacks, starts a Docker daemon if none runs, and stops it again afterwards. `make unit`
# is the fast loop: lint and the unit tests, with no Docker and no root.

VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
SOURCES := dockerpkg tests bench scripts
WITH_SERVICES := scripts/with-services.sh

.PHONY: venv test unit check lint format run bench clean

venv: $(VENV)/.installed

# Debian's own python3 cannot make a venv until python3-venv is installed.
$(VENV)/.installed: setup.py pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV) || { \
		rm -rf $(VENV) && scripts/services.sh packages python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

test: venv
	$(WITH_SERVICES) $(MAKE) --no-print-directory check

# The unit tests need no daemon, no registry and no root, and each works in its own temporary
# folder (ports, where any, are the system's choice), so they run on every core at once.
unit: lint
	$(VENV)/bin/pytest -q -n auto tests/unit

# lint and all tests, against a daemon that is already running (`make test` starts one).
# Branch coverage of the package by every test run in this process (the programs tests start
# are not counted), with a floor in pyproject.toml.
check: lint
	rm -f .coverage
	DOCKERPKG_REQUIRE_DOCKER=1 $(VENV)/bin/coverage run -m pytest -q tests
	$(VENV)/bin/coverage report

lint: venv
	$(RUFF) check $(SOURCES)
	$(RUFF) format --check $(SOURCES)
	$(VENV)/bin/mypy

format: venv
	$(RUFF) format $(SOURCES)
	$(RUFF) check --fix $(SOURCES)

run: venv
	$(WITH_SERVICES) scripts/run-example.sh

bench: venv
	$(WITH_SERVICES) $(PY) bench/bench.py

# Leaves .venv and .run alone: .run/dockerd.pid is how `services.sh down` finds its daemon.
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
