#!/usr/bin/env bash
# Runs every test of the solution (CPU accelerator unless CRNN_TEST_DEVICE says otherwise) and prints the
# totals as the last line: "N passed, N failed[, N skipped]". Exits non-zero on any failure or if no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
# The synthetic-word tests render text with a TrueType font; install DejaVu where none is present.
if ! ls /usr/share/fonts/truetype/*/*.ttf >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core) >/dev/null 2>&1 || echo "warning: could not install fonts-dejavu-core" >&2
fi

# LMDB datasets are read with the system's LMDB 0.9, the format Python's lmdb writes (src/Crnn.Engine/Data/LmdbLibrary.cs).
if ! ldconfig -p 2>/dev/null | grep -q 'liblmdb\.so\.0' && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq liblmdb0) >/dev/null 2>&1 || echo "warning: could not install liblmdb0" >&2
fi

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
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$total" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
exit 0
