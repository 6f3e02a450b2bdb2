#!/usr/bin/env bash
# Runs every Onyx test: component tests and the Aspire AppHost integration tests.
# The integration tests run real redis-server processes (no container engine needed); this script finds
# redis-server or installs it (Debian/Ubuntu as root), or says how to get it.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "The integration tests need redis-server on PATH: install it (Debian/Ubuntu: 'sudo apt-get install redis-server', macOS: 'brew install redis') and run ./test.sh again." >&2
    exit 1
  fi
fi

log=$(mktemp)
set +e
dotnet test Onyx.sln --configuration Release 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain summary line for CI: "Tests: N passed, N failed".
summary=$(grep -E '(Passed|Failed)!' "$log" | tail -n 1 || true)
passed=$(sed -nE 's/.*Passed: *([0-9]+).*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.*Failed: *([0-9]+),.*/\1/p' <<<"$summary")
rm -f "$log"
echo "Tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
