# The two commands of the quick start. Both build .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean oracles browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the CPU build on disk, so no dependency can resolve a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m lmlab.evaluate.lm_eval_adapter install  # `lm_eval --model lmlab` in this venv
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lmlab quickstart

# KenLM's lmplz and query, built once per machine from the PyPI sdist: the oracles of tests/test_kenlm.py.
oracles: $(STAMP)
	PYTHON=$(BIN)/python bash tests/oracles/build_kenlm.sh

# Debian's chromium and chromedriver for the playground's browser test (tests/test_serve.py); CI runs as root.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "error: the browser test needs chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2; \
	    exit 2; \
	  fi; \
	fi

test: $(STAMP) oracles browser
	$(BIN)/ruff check lmlab tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo  # the layer contract in pyproject.toml
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/generate_speed.py
	$(BIN)/python benchmarks/train_throughput.py --family llama
	$(BIN)/python benchmarks/generate_speed.py --family llama
	$(BIN)/python benchmarks/dpo_speed.py
	$(BIN)/python benchmarks/data_prep.py
	$(BIN)/python benchmarks/ngram_vs_nltk.py
	$(BIN)/python benchmarks/ngram_vs_kenlm.py
	$(BIN)/python benchmarks/word2vec_vs_gensim.py
	$(BIN)/python benchmarks/harness_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache
