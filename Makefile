# make        set up .venv, fetch the VGG-16 weights and the images, run the four notebooks
#             (figures/ and html/ are the result)
# make test   set up .venv if needed and run the tests (notebooks included, on the smoke preset)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The tested PyTorch pair; any recent CPU, CUDA or MPS build works.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
MIRROR ?= $(wildcard ../shared/data)

.PHONY: all setup data test notebooks clean-outputs

all: setup data notebooks

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[notebooks,export,test]"
	touch $@

setup: $(VENV)/.installed
	$(PY) -m fastst weights fetch

data: setup
	$(PY) -m fastst data fetch $(if $(MIRROR),--mirror $(MIRROR))

notebooks: data
	$(PY) -m fastst notebooks run --html

test: setup data
	$(PY) -m pytest -q

clean-outputs:
	$(PY) -m fastst notebooks strip
