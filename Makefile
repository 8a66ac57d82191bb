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
# The demo runs fastest on JAX here (teacher epoch: 8 s JAX, 11 s TF, 11-15 s torch).
DEMO_BACKEND ?= jax

.PHONY: install data demo demo-quick reproduce test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is a CPU build that pip finds on these machines; a bare
	# "torch" would pull a multi-gigabyte CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
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
	$(PY) -m keras_distill demo --backend $(DEMO_BACKEND)

demo-quick: install data
	$(PY) -m keras_distill demo --quick --backend $(DEMO_BACKEND)

# The papers' experiments, full mode, into docs/ (about 35 minutes on 2 cores).
reproduce: install data
	$(PY) -m keras_distill reproduce all --backend $(DEMO_BACKEND) --output docs

# One pytest process per backend, since the backend is fixed at import. All
# three run; the target fails if any failed.
test: install data
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend KERAS_DISTILL_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests \
			|| failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED on:$$failed" >&2; exit 1; fi; \
	echo "All tests passed on: $(BACKENDS)"

clean:
	rm -rf $(VENV) distill-output *.egg-info
