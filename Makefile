# deliver — set-up, demo, tests and benchmarks. Every target sets up what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EBU_SET ?= $(abspath ../shared/ebu-loudness-test-set)

.PHONY: setup ffmpeg mediainfo browser pdftotext speech postgres demo lint test bench clean

setup: ffmpeg $(VENV)/.installed

# ffmpeg/ffprobe come from the system (Debian's ffmpeg): installed with apt-get when missing and we
# are root, else a message saying how. DCP pictures need Grok's grk_compress (the JPEG 2000 encoder)
# and OpenJPEG's tools (opj_decompress: the independent decoder of the tests). Chromium (headless)
# renders the HTML report and the Prefect UI in the tests; without it those tests skip with a reason.
ffmpeg:
	@scripts/ensure-apt.sh "$${FFMPEG:-ffmpeg}" ffmpeg
	@scripts/ensure-apt.sh "$${FFPROBE:-ffprobe}" ffmpeg
	@scripts/ensure-apt.sh grk_compress grokj2k-tools
	@scripts/ensure-apt.sh opj_decompress libopenjp2-tools

browser:
	@scripts/ensure-apt.sh chromium chromium optional

# pdftotext (Debian poppler-utils) reads the delivery documents' PDF back in the tests (without it they skip).
pdftotext:
	@scripts/ensure-apt.sh pdftotext poppler-utils optional

# espeak-ng synthesises the speech of the dialogue-loudness tests and bench (without it they skip).
speech:
	@scripts/ensure-apt.sh espeak-ng espeak-ng optional

# MediaInfo (Debian mediainfo) is the independent reader the deliverable and DCP tests compare ffprobe with;
# without it those tests skip with a reason.
mediainfo:
	@scripts/ensure-apt.sh mediainfo mediainfo optional

# PostgreSQL 15 (Debian postgresql) for the post-house tests (marker postgres): each test session initdb's
# and starts its own throw-away cluster on loopback (as nobody when root); without it they skip with a reason.
postgres:
	@scripts/ensure-postgres.sh

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(BIN)/deliver demo

# Lint (ruff, rules in pyproject [tool.ruff]) and types (mypy on flows/ tasks/ specs/, [tool.mypy]) first:
# they take seconds, the suite minutes.
lint: setup
	$(BIN)/ruff check flows tasks specs bench tests
	$(BIN)/mypy

test: setup browser pdftotext speech mediainfo postgres lint
	DELIVER_EBU_TEST_SET="$$( [ -d "$(EBU_SET)" ] && echo "$(EBU_SET)" )" $(BIN)/pytest

bench: setup speech
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Scale-out demonstration: local Prefect server, two process workers on one pool, a nightly-qc run
# whose items spread over both (scripts/workers_demo.sh; docs/operations.md).
.PHONY: workers-demo
workers-demo: setup
	VENV=$(VENV) scripts/workers_demo.sh
