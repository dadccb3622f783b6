# labmind — `make run` starts the daemon (and the tray where there is a display);
# `make test` runs lint, type checks and the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := git dbus xvfb xdotool dunst x11-utils gcc linux-libc-dev \
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint format typecheck unit bench system-deps venv clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: system-deps $(STAMP)

run: venv
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/labmind --no-autostart gui --background; fi
	$(BIN)/labmind daemon

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.typecheck/labmind: daemon indexers trainers gui
	@mkdir -p .typecheck/labmind
	@for p in daemon indexers trainers gui; do ln -sfn ../../$$p .typecheck/labmind/$$p; done

typecheck: venv .typecheck/labmind
	$(BIN)/mypy -p labmind.daemon -p labmind.indexers -p labmind.trainers -p labmind.gui
	$(BIN)/mypy tests bench

unit: venv
	$(BIN)/pytest -q --durations=25

test: lint typecheck unit

bench: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .typecheck .mypy_cache .ruff_cache .pytest_cache
