#!/usr/bin/env bash
# What the web tests need beyond `pip install -e ".[test]"`: the web extra (Flask, gunicorn,
# Playwright for Python) and Debian's Chromium for the end-to-end tests. Playwright drives
# /usr/bin/chromium by its executable path; never run `playwright install` (no browser downloads here).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
.venv/bin/pip install -q -e ".[test,web]"
