#!/usr/bin/env bash
# Runs every test of the solution (CPU accelerator unless CRNN_TEST_DEVICE says otherwise) and prints the
# totals as the last line: "N passed, N failed[, N skipped]". Exits non-zero on any failure or if no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
# The synthetic-word tests render text with TrueType fonts; install them where missing (warns, never fails).
tools/setup.sh

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

dotnet test Crnn.Gpu.sln -c Release --logger "trx" --results-directory "$results" "$@"
status=$?

passed=0; failed=0; skipped=0; total=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  total=$((total + $(get total)))
  passed=$((passed + $(get passed)))
  f=$(( $(get failed) + $(get error) + $(get timeout) + $(get aborted) ))
  failed=$((failed + f))
  # VSTest counts a skipped test in total but in none of the outcome counters.
  skipped=$((skipped + $(get total) - $(get passed) - f))
done

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$total" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
exit 0
