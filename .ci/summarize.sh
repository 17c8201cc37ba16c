#!/usr/bin/env bash
# Summarizes a verbose `go test` log: counts, failures, skips, and fails
# when a test that must run in CI (root, network namespaces, the real
# control plane) was skipped.
set -uo pipefail
log=$1
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
pkgfail=$(grep -cE '^(FAIL|panic:)' "$log")
echo
echo "== skipped tests =="
grep -E '^\s*--- SKIP' "$log" || echo "(none)"
status=0
if [ "$(id -u)" -eq 0 ] && [ -n "${CI:-}${EXTLB_REQUIRE_PRIVILEGED:-}" ]; then
  # Tests that need root or the control plane say so in their skip
  # message; as root in CI none of them may skip.
  if grep -A2 -E '^\s*--- SKIP' "$log" | grep -qiE 'root|namespace|CAP_NET|control.?plane'; then
    echo "a test that needs root, namespaces or the control plane was skipped in CI" >&2
    status=1
  fi
fi
echo "== privileged tests that ran =="
grep -hE 'RAN-PRIVILEGED' "$log" | sort -u | head -50 || true
if [ "$failed" -ne 0 ] || [ "$pkgfail" -ne 0 ]; then
  echo "== failures =="
  grep -E '^\s*--- FAIL|^FAIL|^panic:' "$log"
  status=1
fi
echo
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
