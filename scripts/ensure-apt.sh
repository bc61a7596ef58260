#!/usr/bin/env bash
# ensure-apt.sh COMMAND PACKAGE [optional]
# Make COMMAND available: nothing to do when it is on PATH; otherwise install Debian's PACKAGE with
# apt-get when running as root; otherwise say how to install it. Required tools exit 3 (the
# infrastructure exit code) when missing; optional ones (e.g. chromium for the report/UI tests,
# which then skip with a reason) only warn.
set -u
cmd="$1" pkg="$2" optional="${3:-}"
command -v "$cmd" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "$cmd missing: installing Debian package $pkg with apt-get"
  if apt-get install -y --no-install-recommends "$pkg" >/dev/null 2>&1 ||
     { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$pkg" >/dev/null 2>&1; }; then
    command -v "$cmd" >/dev/null 2>&1 && exit 0
  fi
  echo "warning: apt-get install $pkg did not provide $cmd" >&2
fi
if [ -n "$optional" ]; then
  echo "note: $cmd not found (Debian: apt-get install $pkg); the tests that need it will be skipped" >&2
  exit 0
fi
echo "error: $cmd not found. Install it (Debian/Ubuntu: sudo apt-get install $pkg; macOS: brew install $pkg)" \
     "or point FFMPEG/FFPROBE at the binaries, then re-run." >&2
exit 3
