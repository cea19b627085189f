# Two entry points: `make demo` (evaluate on the bundled mini benchmark: the oracle, a constant baseline and
# `lira-tiny`, the LIRA pipeline with random weights on the first 20 samples of each task, about a minute on
# 2 CPU cores) and `make test`;
# `make golden` deliberately rewrites the CI golden results (tests/golden/*.json).
# Both create .venv when missing and install torch first (override TORCH_SPEC for a GPU build).

VENV ?= .venv
PYTHON := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
NLTK_DATA ?= $(if $(wildcard ../shared/nltk_data),$(abspath ../shared/nltk_data),$(HOME)/nltk_data)
export NLTK_DATA

.PHONY: demo test install lint golden nltk-data

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# CHAIR's tokenizer, tagger and lemmatiser data; fetched once with NLTK's own downloader when missing.
nltk-data: $(VENV)/.installed
	@$(PYTHON) -c "import nltk; [nltk.data.find(p) for p in ('tokenizers/punkt_tab', \
		'taggers/averaged_perceptron_tagger_eng', 'corpora/wordnet')]" 2>/dev/null \
		|| $(PYTHON) -m nltk.downloader -d "$(NLTK_DATA)" punkt_tab averaged_perceptron_tagger_eng wordnet < /dev/null

demo: $(VENV)/.installed nltk-data
	$(PYTHON) run_eval.py --model oracle --tasks all --output-dir runs/demo/oracle --no-progress
	$(PYTHON) run_eval.py --model constant --model-args answer=yes,mask=center --tasks all \
		--output-dir runs/demo/constant --no-progress
	$(PYTHON) run_eval.py --model lira-tiny --tasks all --limit 20 --output-dir runs/demo/lira-tiny --no-progress
	$(PYTHON) run_eval.py report runs/demo/oracle runs/demo/constant runs/demo/lira-tiny --out runs/demo/leaderboard
	@echo "demo results: runs/demo/*/results.json, reports: runs/demo/*/report.html, runs/demo/leaderboard/"

test: $(VENV)/.installed
	$(PYTHON) -m pytest -q

# Rerun every case of tests/golden/cases.json and rewrite its golden results file; review the diff
# (git diff tests/golden) before committing. The replay case reads tests/golden/replay/mini.jsonl,
# made once with `python -m reports.golden make-replay ORACLE_RUN_DIR tests/golden/replay/mini.jsonl`.
golden: $(VENV)/.installed
	$(PYTHON) -m reports.golden regenerate

lint: $(VENV)/.installed
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
