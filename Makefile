# sgquant: `make test` and `make book` each create .venv and install everything.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default

# Developers' and CI's offline copy of the raw datasets, when it sits beside the
# checkout; on a networked machine PyG downloads them instead.
ifneq ($(wildcard ../shared/datasets),)
export SGQUANT_DATA_MIRROR ?= $(abspath ../shared/datasets)
endif

.PHONY: install test test-all book benchmarks clean clean-results

$(BIN)/sgquant: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[book,test]'
	@touch $@

install: $(BIN)/sgquant

test: install            ## the CI suite (< 10 min on 2 cores): unit tests + a quick book build
	$(BIN)/python -m pytest -m "not slow"

test-all: install        ## also the slow end-to-end tests
	$(BIN)/python -m pytest

book: install            ## run every chapter with papermill and build the HTML book
	$(BIN)/sgquant book --profile $(PROFILE)

benchmarks: install
	$(BIN)/python benchmarks/search_latency.py
	$(BIN)/python benchmarks/scaling.py

clean:                   ## the built book and executed chapters; the results cache stays
	rm -rf _build book/chapters

clean-results:           ## the results cache too (every measurement is recomputed)
	rm -rf results
