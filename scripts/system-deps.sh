#!/bin/sh
# System packages the project needs beyond Python (Debian / Ubuntu, apt):
#   chromium       the UI check in a real browser (scripts/ui_check.py, tests/test_ui.py)
#   poppler-utils  pdftoppm / pdftotext: the report tests render PDF pages
# Installs what is missing: as root with apt-get, else through `sudo -n`, else it says what to
# install and exits 0 (the tests that need a missing tool skip, saying why).
# Quick and silent-ish when everything is there; safe to run again.
#
#   sh scripts/system-deps.sh          install what is missing
#   sh scripts/system-deps.sh --check  only report; exit 1 when something is missing
set -eu

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if ! command -v pdftoppm >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then
    missing="$missing poppler-utils"
fi
missing="${missing# }"

if [ -z "$missing" ]; then
    echo "system-deps: chromium and poppler-utils are installed"
    exit 0
fi

advise() {
    echo "system-deps: $1" >&2
    echo "system-deps: missing Debian packages: $missing" >&2
    echo "system-deps: install them with:  sudo apt-get install -y --no-install-recommends $missing" >&2
    echo "system-deps: until then the UI check and the PDF page tests are skipped" >&2
}

if [ "$check_only" -eq 1 ]; then
    advise "checked only (--check)"
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    advise "no apt-get on this machine: install the equivalent packages with its package manager"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as_root="sudo -n"
else
    advise "not root and no password-less sudo, so nothing was installed"
    exit 0
fi

echo "system-deps: installing $missing"
# $missing and $as_root are word lists on purpose
# shellcheck disable=SC2086
if $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; then
    echo "system-deps: installed $missing"
else
    advise "apt-get failed (see above)"
fi
exit 0
