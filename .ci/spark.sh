#!/usr/bin/env bash
# CI: the optional [spark,dask] extras into .venv, a JDK if the machine has none, then tests/spark/
# on a real local Spark (local[2], bound to 127.0.0.1) and on Dask. The main runs in .ci/run do
# not install the extras, so there these tests skip; run this after them, with .venv already made.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
    echo "installing a Java runtime for PySpark (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq openjdk-17-jre-headless >&2
fi
.venv/bin/pip install -q -e ".[spark,dask]"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/spark
