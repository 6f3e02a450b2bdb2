#!/usr/bin/env bash
# Runs every Onyx test: component tests and the Aspire AppHost integration tests.
# The integration tests run real redis-server processes (no container engine needed) and the admin console's
# tests a headless chromium; this script finds both or installs them (Debian/Ubuntu as root), or says how to get them.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need beyond the SDK, each as a Debian/Ubuntu package: the tests start their own redis-server
# instances, and the admin console's browser tests drive the system's chromium (Playwright downloads no browser).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "${missing[*]} not found: installing with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "The tests need ${missing[*]} on PATH: install it (Debian/Ubuntu: 'sudo apt-get install ${missing[*]}'; macOS: 'brew install redis' and a chromium on PATH) and run ./test.sh again." >&2
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
