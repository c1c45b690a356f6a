# The README's commands. Both `make demo` and `make test` start from nothing:
# they create .venv, install the pinned stack and make sure ffmpeg/ffprobe exist.
# `make test` also installs Debian's chromium (the report's browser test) when it is missing and it runs as root;
# elsewhere that test skips, saying why. `make test` lists why each skipped test skipped (-rs).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# test files run in parallel, one pytest worker per core (`make test TEST_JOBS=0` runs them in this process)
TEST_JOBS ?= auto

.PHONY: demo test test-all install ffmpeg chromium clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# musdb/stempeg need the ffmpeg and ffprobe binaries, even for WAV data.
ffmpeg:
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's ffmpeg (needed by musdb/stempeg)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "ffmpeg and ffprobe are missing: install them (Debian/Ubuntu: sudo apt-get install ffmpeg), then run make again" >&2; \
		exit 1; \
	fi

# The report's browser test drives headless Chromium through playwright (playwright's own download cannot work
# offline): Debian's package, at /usr/bin/chromium. Not being able to install it is no error: the test skips.
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium (the report's browser test)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
		echo "could not install chromium: the report's browser test will skip" >&2; \
	else \
		echo "chromium is missing (Debian/Ubuntu: sudo apt-get install chromium): the report's browser test will skip" >&2; \
	fi

test: install ffmpeg chromium
	$(BIN)/python -m pytest -q -rs -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

demo: install ffmpeg
	$(BIN)/python experiments/demo.py

clean:
	rm -rf $(VENV) build *.egg-info
