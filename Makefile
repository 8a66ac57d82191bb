# `make demo` and `make test` set everything up on a fresh machine: a virtual
# environment with the three Keras backends, and Debian's Fashion-MNIST.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# Debian's fortunes: the text of the byte-level language-model example.
FORTUNES := /usr/share/games/fortunes
# The demo and the reproductions train CNN teachers; on these 2 CPU cores an
# epoch of the CNN teacher takes 44 s on TensorFlow, 64 s on PyTorch and
# 129 s on JAX (an MLP epoch: 5.0 s, 5.9 s, 3.3 s), so TensorFlow is fastest.
DEMO_BACKEND ?= tensorflow

.PHONY: install data demo demo-quick reproduce lint format notebooks test docs dist wheel mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	# torch==2.13.0 from pip's configured index: this project's machines find
	# a CPU build there; from plain PyPI it is the CUDA build (several GB), so
	# pass TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one.
	$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[tensorflow,jax,data,test]"
	touch $(STAMP)

data:
	@if [ -d $(FASHION_MNIST) ] && [ -d $(FORTUNES) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist fortunes; \
	else \
		echo "Fashion-MNIST or fortunes is missing: run 'sudo apt-get install dataset-fashion-mnist fortunes'," \
		     "or set KERAS_DISTILL_DATA to a directory holding Fashion-MNIST's four .gz files" \
		     "(the language-model example falls back to /usr/share/common-licenses)." >&2; \
	fi

demo: install data
	$(PY) examples/demo.py --backend $(DEMO_BACKEND)

demo-quick: install data
	$(PY) examples/demo.py --quick --backend $(DEMO_BACKEND)

# The papers' experiments, full mode, into docs/ (hours on 2 cores; trained
# teachers are kept under ~/.keras/keras_distill/teachers and reused).
reproduce: install data
	$(PY) -m reproductions all --backend $(DEMO_BACKEND) --output docs

# ruff is the law of the tree: `make format` rewrites, `make lint` checks.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Lint first, then one pytest process per backend, since the backend is
# fixed at import. All three run; the target fails if any failed.
test: install data lint
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend KERAS_DISTILL_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests \
			|| failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED on:$$failed" >&2; exit 1; fi; \
	echo "All tests passed on: $(BACKENDS)"

# The notebooks, written from their jupytext sources (notebooks/NN_*.py,
# which ruff checks): edit the .py, then run this.
notebooks: install
	$(VENV)/bin/jupytext --to ipynb notebooks/[0-9]*.py

# The docs site, from docs/ and the docstrings, into site/.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The sdist and the wheel in dist/, checked as a package index would.
dist: install
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check dist/*

# The wheel alone, to install elsewhere: only `build` is installed (into
# .build-venv), not the development environment.
wheel:
	$(PYTHON) -m venv .build-venv
	.build-venv/bin/python -m pip install --quiet build
	.build-venv/bin/python -m build --wheel --outdir dist .

# Mutation testing of the losses and one training step (mutmut, torch), its
# settings in pyproject.toml: about an hour on 2 cores (68 minutes measured),
# so not in CI. docs/development.md has the score and every survivor's reason.
mutation: install
	$(PY) -m pip install --quiet mutmut==3.8.1
	rm -rf mutants
	KERAS_BACKEND=torch OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) .build-venv distill-output *.egg-info site dist build mutants
