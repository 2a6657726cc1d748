# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
# "mariadb" (the mysqlclient driver) is added when pkg-config finds libmariadb, which building
# mysqlclient needs (apt-get install libmariadb-dev pkg-config): `make test` then tests MariaDB
# too. Without it tests/run.py says what is missing.
EXTRAS ?= dev$(shell pkg-config --exists libmariadb 2>/dev/null && echo ,mariadb)
BIN := $(VENV)/bin
# Named after the extras: installing libmariadb-dev later makes the next `make test` add mysqlclient.
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test coverage lint types check messages docs matrix ci-matrix clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The demo installs only what it needs (the package and its three dependencies; no extra),
# not the whole [dev] extra, so a fresh clone answers within seconds. A venv that `make test`
# set up has all of it already. (Country names on the Insights page come with [insights].)
# --no-compile: byte-compiling all of Django took half the install; Python compiles what the
# demo imports as it goes.
DEMO_STAMP := $(VENV)/.demo-installed
demo:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test $(STAMP) -nt pyproject.toml || test $(DEMO_STAMP) -nt pyproject.toml || { \
		echo "Installing the demo's requirements into $(VENV) ..." && \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e . && \
		touch $(DEMO_STAMP); }
	$(BIN)/python example_project/demo.py

# The whole suite on SQLite, and beside it on the local PostgreSQL and MariaDB (tests/run.py).
test: $(STAMP)
	$(BIN)/python tests/run.py

# The same, with branch coverage measured in the SQLite run and held to fail_under (95 %).
# Not in `make test`: the tracer was a sixth of its CPU. CI measures it (nox suite session).
coverage: $(STAMP)
	$(BIN)/python tests/run.py --coverage

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy django_nexmo_conversion

check: lint types
	$(BIN)/python -m django makemigrations --check --dry-run --settings=tests.settings --pythonpath=.

# The translations (django_nexmo_conversion/locale): extract the strings into every catalog, then
# compile them. Translate the empty and fuzzy entries in between; tests/test_translations.py
# fails while any is left. Needs gettext (apt-get install gettext).
LANGUAGES := de es fr pt_BR
messages: $(STAMP)
	cd django_nexmo_conversion && $(abspath $(BIN))/python -m django makemessages \
		$(addprefix -l ,$(LANGUAGES)) --no-obsolete --settings=tests.settings --pythonpath=..
	cd django_nexmo_conversion && $(abspath $(BIN))/python -m django compilemessages \
		--settings=tests.settings --pythonpath=..

# The documentation site, warnings as errors (as Read the Docs and the nox docs session build it).
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

# Every supported Python x Django x database, plus lint, types and package (CONTRIBUTING.md).
matrix: $(STAMP)
	$(BIN)/nox

# The subset CI runs: lint, types, package, and the oldest and newest Python/Django pairs on
# SQLite, PostgreSQL and MariaDB.
ci-matrix: $(STAMP)
	$(BIN)/nox -t ci

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov dist build
