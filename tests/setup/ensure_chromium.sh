#!/usr/bin/env bash
# Makes sure Debian's chromium is at /usr/bin/chromium for the browser tests.
# The report test drives the distribution's browser (not playwright's download) so
# that the test needs no network access once the machine is provisioned.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: $CHROMIUM is missing and installing it needs root (no sudo available)." >&2
        echo "       run as root: apt-get update && apt-get install -y chromium" >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $CHROMIUM is missing and apt-get is not available on this machine;" >&2
    echo "       install Chromium so that $CHROMIUM exists, then rerun the browser tests." >&2
    exit 1
fi

echo "installing Debian's chromium (apt-get update && apt-get install chromium) ..."
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update; then
    echo "error: apt-get update failed; cannot install chromium (is the package mirror reachable?)" >&2
    exit 1
fi
if ! $SUDO apt-get install -y --no-install-recommends chromium; then
    echo "error: apt-get install chromium failed; the browser tests cannot run." >&2
    exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "error: chromium was installed but $CHROMIUM does not exist." >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
