# Developer entry points. `make serve` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PORT   ?= 8080
MODE   ?= echo

.PHONY: serve test bench wheel clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Install the package (compiled backend when a compiler is present) and start the demo server.
serve: $(PY)
	$(PY) -m pip install -q .
	$(PY) -m wsframe serve --mode $(MODE) --host 127.0.0.1 --port $(PORT)

# Install with test extras, editable, and run the whole suite against both backends.
test: $(PY)
	$(PY) -m pip install -q -e '.[test,browser]'
	$(PY) -m pytest tests

# Framing and end-to-end benchmarks, both backends and the peers side by side.
bench: $(PY)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,ops

# Build an sdist, a wheel from it, repair it, and test the installed wheel (see docs/packaging.md).
wheel:
	bash tools/build_wheels.sh

clean:
	rm -rf build dist wheelhouse *.egg-info src/*.egg-info src/wsframe/protocol/*.so src/wsframe/protocol/kernels_c.c src/wsframe/protocol/frames.c
