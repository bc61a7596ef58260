# deliver — set-up, demo, tests and benchmarks. Every target sets up what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EBU_SET ?= $(abspath ../shared/ebu-loudness-test-set)

.PHONY: setup ffmpeg demo test bench clean

setup: ffmpeg $(VENV)/.installed

# ffmpeg/ffprobe come from the system (Debian's ffmpeg); install them when missing and we are root.
ffmpeg:
	@if command -v $${FFMPEG:-ffmpeg} >/dev/null 2>&1 && command -v $${FFPROBE:-ffprobe} >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "ffmpeg missing: installing it with apt-get"; \
	  (apt-get install -y --no-install-recommends ffmpeg >/dev/null 2>&1 || \
	   (apt-get update >/dev/null && apt-get install -y --no-install-recommends ffmpeg >/dev/null)) || \
	  { echo "error: apt-get install ffmpeg failed; install ffmpeg 5.1+ and re-run" >&2; exit 3; }; \
	else \
	  echo "error: ffmpeg/ffprobe not found. Install them (Debian/Ubuntu: sudo apt-get install ffmpeg;" \
	       "macOS: brew install ffmpeg) or point FFMPEG/FFPROBE at the binaries, then re-run." >&2; exit 3; \
	fi

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(BIN)/deliver demo

test: setup
	DELIVER_EBU_TEST_SET="$$( [ -d "$(EBU_SET)" ] && echo "$(EBU_SET)" )" $(BIN)/pytest

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Scale-out demonstration: local Prefect server, two process workers on one pool, a nightly-qc run
# whose items spread over both (scripts/workers_demo.sh; docs/operations.md).
.PHONY: workers-demo
workers-demo: setup
	VENV=$(VENV) scripts/workers_demo.sh
