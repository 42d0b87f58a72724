# Two commands matter: `make demo` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint test demo bench bench-install bench-quick local clean

# The project's own packages are compiled on every `make install` (only what changed): an editable
# install leaves them as source, which every process (the CLI, the local stack's server) compiles
# again where PYTHONDONTWRITEBYTECODE is set (~0.3 s of CPU of each `smr run --local`).
install: $(STAMP)
	$(PY) -m compileall -q airflow_provider_smr lambda_handlers > /dev/null

# uv installs the whole stack in seconds; pip is the fallback when uv cannot be had. Bytecode is
# compiled at install, as pip does (uv does not by default): without it every `smr run --local`
# compiles moto from source again where PYTHONDONTWRITEBYTECODE is set (seconds of its start).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv \
	  && $(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e '.[local,dev]' \
	  || $(PY) -m pip install -q --disable-pip-version-check -e '.[local,dev]'
	touch $(STAMP)

# The lint and type gates, configured in pyproject.toml: ruff over the repo, mypy over both planes.
lint: install
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

# The gates first (zero findings), then the suite. Serial by default. PYTEST_ARGS="-n 2 --dist
# loadscope" runs two workers (pytest-xdist), each with its own local stack and Airflow home, a
# module's tests on one worker (module fixtures run once).
test: lint
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: install
	$(PY) -m airflow_provider_smr.demo

# The bench extra: Lithops (the peer row of the same run), py-spy, the HTTP servers compared.
bench-install: install
	$(VENV)/bin/uv pip install --python $(PY) -q -e '.[bench]' \
	  || $(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'

bench: bench-install
	$(PY) bench/run.py

bench-quick: bench-install
	$(PY) bench/run.py --quick

local: install
	$(VENV)/bin/smr local up

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
