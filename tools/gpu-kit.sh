#!/usr/bin/env bash
# GPU run kit: test, benchmark and compare crnn on a machine that has a GPU driver (and maybe PyTorch) but no .NET.
#
#   bash tools/gpu-kit.sh publish   # here (needs .NET): writes publish/gpu-kit/ (git-ignored, ~40 MiB)
#   bash tools/gpu-kit.sh run       # there, from the repository root or the kit folder
#
# publish: one self-contained single-file binary, crnn-kit (the test runner; `crnn-kit crnn ARGS` is the crnn
#          CLI), plus this script, the PyTorch peer and DejaVuSans.ttf for the synthetic-word renderer.
# run:     1. all tests on the device (CRNN_TEST_DEVICE), 2. `crnn bench` at batch 32 and 256,
#          3. bench/peers/pytorch_crnn.py at the same batch sizes (skipped when torch is missing),
#          4. both throughputs side by side; reports under bench/results/ (and copied to $OUT when set).
# Settings (environment): CRNN_KIT_DEVICE (cuda; cpu for a dry run), CRNN_KIT_BATCHES ("32 256"),
#   CRNN_KIT_STEPS (20), CRNN_KIT_WARMUP (3), CRNN_KIT_FILTER (a test-name substring; empty: all tests),
#   CRNN_KIT_RESULTS (bench/results of the checkout, else the kit's results/).
set -uo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

publish() {
  local repo kit font
  repo="$(cd "$script_dir/.." && pwd)"
  kit="$repo/publish/gpu-kit"
  rm -rf "$kit" && mkdir -p "$kit" || return 1
  # Not trimmed: trimming breaks ILGPU (kernels are compiled from IL at run time) and the runner's reflection.
  dotnet publish "$repo/tests/Crnn.TestRunner/Crnn.TestRunner.csproj" -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none -o "$kit/bin" || return 1
  mv "$kit/bin/crnn-kit" "$kit/crnn-kit" && rm -rf "$kit/bin"
  cp "$repo/tools/gpu-kit.sh" "$repo/bench/peers/pytorch_crnn.py" "$kit/"
  font="$(find /usr/share/fonts /usr/local/share/fonts "$HOME/.fonts" -name DejaVuSans.ttf 2>/dev/null | head -n 1)"
  if [ -n "$font" ]; then cp "$font" "$kit/"; else echo "warning: no DejaVuSans.ttf here; the kit carries no font" >&2; fi
  echo "kit: $kit"
  du -sh "$kit"/* | sed 's/^/  /'
  echo "size in all: $(du -sm "$kit" | cut -f1) MiB"
}

# The synthetic-word renderer (SyntheticWords.FindFont) looks in the standard font folders, ~/.fonts included,
# and prefers DejaVuSans.ttf: put the kit's copy there unless one is installed.
install_font() {
  local kit="$1"
  if find /usr/share/fonts /usr/local/share/fonts "$HOME/.fonts" -name DejaVuSans.ttf 2>/dev/null | grep -q .; then return; fi
  if [ -f "$kit/DejaVuSans.ttf" ]; then
    mkdir -p "$HOME/.fonts" && cp "$kit/DejaVuSans.ttf" "$HOME/.fonts/" && echo "font: installed the kit's DejaVuSans.ttf in ~/.fonts"
  else
    echo "warning: no DejaVuSans.ttf installed or in the kit; synthetic-word steps may fail" >&2
  fi
}

# "h100" from "NVIDIA H100 80GB HBM3"; "cpu" for the CPU.
device_slug() {
  local name
  if [ "$1" = cpu ]; then echo cpu; return; fi
  name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
  name="$(echo "$name" | tr 'A-Z' 'a-z' | sed 's/nvidia//; s/geforce//; s/tesla//' | awk '{print $1}' | tr -cd 'a-z0-9-')"
  echo "${name:-$1}"
}

# images/s per batch from a crnn bench report: lines "batch images_per_sec".
crnn_rates() { awk '/^## Batch /{b=$3} /^\*\*[0-9.]+ images\/s\*\*/{gsub(/\*/,"",$1); print b, $1}' "$1"; }

# images/s per mode and batch from the peer's "peer-json:" line: lines "mode batch images_per_sec".
peer_rates() {
  grep '^peer-json: ' "$1" 2>/dev/null | grep -o '"mode": "[a-z]*", "batch": [0-9]*, "images_per_sec": [0-9.]*' |
    sed 's/"mode": "\([a-z]*\)", "batch": \([0-9]*\), "images_per_sec": \([0-9.]*\)/\1 \2 \3/'
}

run() {
  local kit repo results device slug date batches steps warmup status=0
  if [ -x "$script_dir/crnn-kit" ]; then kit="$script_dir"; else kit="$(cd "$script_dir/.." && pwd)/publish/gpu-kit"; fi
  [ -x "$kit/crnn-kit" ] || { echo "error: no kit at $kit; run 'bash tools/gpu-kit.sh publish' on a machine with .NET" >&2; return 2; }
  # A checkout around the kit (publish/gpu-kit or tools/) gets the reports in its bench/results.
  for repo in "$kit/../.." "$kit/.." ""; do [ -n "$repo" ] && [ -d "$repo/bench/results" ] && break; done
  results="${CRNN_KIT_RESULTS:-${repo:+$repo/bench/results}}"
  results="${results:-$kit/results}"
  mkdir -p "$results" && results="$(cd "$results" && pwd)"
  device="${CRNN_KIT_DEVICE:-cuda}"
  batches="${CRNN_KIT_BATCHES:-32 256}"
  steps="${CRNN_KIT_STEPS:-20}"
  warmup="${CRNN_KIT_WARMUP:-3}"
  slug="$(device_slug "$device")"
  date="$(date -u +%Y-%m-%d)"
  # The single file unpacks its native libraries (SkiaSharp, ...) once, into a writable folder.
  export DOTNET_BUNDLE_EXTRACT_BASE_DIR="${DOTNET_BUNDLE_EXTRACT_BASE_DIR:-${TMPDIR:-/tmp}/crnn-kit-extract}"
  local tests_log="$results/$date-$slug-tests.txt" bench_md="$results/$date-$slug-training.md"
  local peer_md="$results/$date-$slug-pytorch.md" peer_log="$results/$date-$slug-pytorch.txt" report="$results/$date-$slug-kit.md"
  install_font "$kit"
  echo "== device $device ($slug); reports in $results"
  "$kit/crnn-kit" crnn devices || status=1

  echo "== 1/3 tests (CRNN_TEST_DEVICE=$device)"
  local filter=()
  [ -n "${CRNN_KIT_FILTER:-}" ] && filter=(--filter "$CRNN_KIT_FILTER")
  CRNN_TEST_DEVICE="$device" "$kit/crnn-kit" "${filter[@]}" > "$tests_log" 2>&1 || status=1
  grep -E '^  (FAIL|SKIP) ' "$tests_log" | head -n 40
  local tests_line; tests_line="$(tail -n 1 "$tests_log")"
  echo "tests: $tests_line (log: $tests_log)"

  echo "== 2/3 crnn bench (batch $batches, $steps steps after $warmup warm-up)"
  # shellcheck disable=SC2086 # the batch sizes are separate arguments
  "$kit/crnn-kit" crnn bench --device "$device" --batch-size $batches --steps "$steps" --warmup "$warmup" \
    --output "$bench_md" > /dev/null || { echo "crnn bench failed" >&2; status=1; }

  echo "== 3/3 PyTorch peer"
  local peer_device="$device" peer_note=""
  [ "$device" = cpu ] || peer_device=cuda
  if ! command -v python3 > /dev/null; then
    peer_note="no python3 here: no PyTorch peer"
  else
    # shellcheck disable=SC2086
    python3 "$kit/pytorch_crnn.py" --device "$peer_device" --batch-size $batches --steps "$steps" --warmup "$warmup" \
      --output "$peer_md" > "$peer_log" 2>&1
    case $? in
      0) ;;
      3) peer_note="torch is not installed here: no PyTorch peer" ;;
      *) peer_note="the PyTorch peer failed (see $peer_log)"; tail -n 5 "$peer_log" ;;
    esac
  fi
  [ -n "$peer_note" ] && echo "$peer_note"

  write_report "$report" "$device" "$slug" "$tests_line" "$bench_md" "$peer_log" "$peer_note" "$batches" "$steps" "$warmup"
  echo "== summary"
  sed -n '/^| batch/,$p' "$report"
  echo "report: $report"
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then cp "$tests_log" "$bench_md" "$report" "$OUT/" 2>/dev/null; cp "$peer_md" "$peer_log" "$OUT/" 2>/dev/null; fi
  return $status
}

write_report() {
  local report="$1" device="$2" slug="$3" tests_line="$4" bench_md="$5" peer_log="$6" peer_note="$7" batches="$8" steps="$9" warmup="${10}"
  local cpu gpu b crnn eager compiled ratio
  cpu="$(grep -m 1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
  gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
  {
    echo "# GPU kit run: crnn vs PyTorch, training steps ($(date -u +%Y-%m-%d), $slug)"
    echo
    echo "- machine: $(hostname), ${cpu:-unknown CPU}, $(nproc) cores; GPU: ${gpu:-none} (driver)"
    echo "- device: $device; $steps measured steps after $warmup warm-up per batch size; seed model, Adam 5e-4, float32"
    echo "- tests (CRNN_TEST_DEVICE=$device): $tests_line"
    echo "- crnn: synthetic words rendered during the steps, as \`crnn train\` runs ($(basename "$bench_md"));" \
         "PyTorch: random images and labels made on the device beforehand, cuDNN, TF32 off (bench/peers/pytorch_crnn.py)"
    [ -n "$peer_note" ] && echo "- $peer_note"
    echo "- reproduce: \`bash tools/gpu-kit.sh publish\` with .NET, then \`CRNN_KIT_DEVICE=$device CRNN_KIT_BATCHES=\"$batches\" CRNN_KIT_STEPS=$steps CRNN_KIT_WARMUP=$warmup bash tools/gpu-kit.sh run\`"
    echo
    echo "| batch | crnn (ILGPU) images/s | PyTorch eager images/s | PyTorch compile images/s | crnn / eager |"
    echo "|---:|---:|---:|---:|---:|"
    for b in $batches; do
      crnn="$(crnn_rates "$bench_md" 2>/dev/null | awk -v b="$b" '$1 == b {print $2}')"
      eager="$(peer_rates "$peer_log" | awk -v b="$b" '$1 == "eager" && $2 == b {print $3}')"
      compiled="$(peer_rates "$peer_log" | awk -v b="$b" '$1 == "compile" && $2 == b {print $3}')"
      ratio="–"
      [ -n "$crnn" ] && [ -n "$eager" ] && ratio="$(awk -v c="$crnn" -v e="$eager" 'BEGIN {printf "%.2f", c / e}')"
      echo "| $b | ${crnn:-–} | ${eager:-–} | ${compiled:-–} | $ratio |"
    done
    grep -o '"compile": "[^"]*"' "$peer_log" 2>/dev/null | sed 's/^/\n- torch.compile failed: /'
  } > "$report"
}

case "${1:-}" in
  publish) publish ;;
  run) run ;;
  *) echo "usage: bash tools/gpu-kit.sh publish|run" >&2; exit 2 ;;
esac
