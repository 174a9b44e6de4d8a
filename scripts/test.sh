#!/usr/bin/env bash
# The whole test suite: unit and property tests, end-to-end tests of real broker processes with
# librdkafka, a pure-Python client (kafka-python) and Debian's kcat, and librdkafka's own
# integration suite. Installs what it needs: kcat-smoke.sh and librdkafka-suite.sh install their
# Debian packages, and the Python clients go into a venv under target/. The cargo tests need
# Debian's promtool (package prometheus) and chromium, installed here when missing.
# Usage: ./scripts/test.sh            (everything)
#        ./scripts/test.sh --quick    (cargo tests only)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true

echo "== Debian tools the cargo tests use: promtool (checks /metrics), headless chromium (console page), kcat (SCRAM and TLS clients), openssl (test certificates of the Python tests)"
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v kcat >/dev/null || missing+=(kcat)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building the workspace (one target dir for every test binary)"
cargo build --workspace --bins --all-targets

echo "== cargo tests"
cargo test --workspace --no-fail-fast

if [ "$quick" = true ]; then exit 0; fi

echo "== Python client tests (kafka-python, confluent-kafka)"
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q -r tests/python/requirements.txt
"$venv/bin/python" -m pytest -q tests/python

echo "== kcat (Debian's, librdkafka 2.0.2)"
./scripts/kcat-smoke.sh

echo "== librdkafka's own integration suite"
./scripts/librdkafka-suite.sh
