#!/usr/bin/env bash
# GPU run kit: test, benchmark and compare crnn on a machine that has a GPU driver (and maybe PyTorch) but no .NET.
#
#   bash tools/gpu-kit.sh publish   # here (needs .NET): writes publish/gpu-kit/ (git-ignored, ~43 MiB)
#   bash tools/gpu-kit.sh run [tests] [bench] [peer]   # there, in a checkout of this repository with the kit in it
#
# publish: crnn-kit.tar.xz, the self-contained build of the test runner (crnn-kit; `crnn-kit crnn ARGS` is the crnn
#          CLI) — xz, because the kit travels to the GPU machine with the checkout under a 64 MiB limit — plus this
#          script, the PyTorch peer, the DejaVu fonts the tests draw with and lib/liblmdb.so.0.
# run:     unpacks the binary into publish/crnn-kit (once) beside links to the checkout's models/ and
#          tests/fixtures, which the tests read there, then
#          1. all tests on the device (CRNN_TEST_DEVICE; ≈ 7 min on an H200, estimated), 2. `crnn bench` at batch 32 and 256
#          and the launch report of one batch-256 step (`crnn bench --launches`),
#          3. bench/peers/pytorch_crnn.py at the same batch sizes (skipped when torch is missing),
#          4. both throughputs side by side; reports under bench/results/ (and copied to $OUT when set).
# Settings (environment): CRNN_KIT_DEVICE (cuda; cpu for a dry run), CRNN_KIT_BATCHES ("32 256"),
#   CRNN_KIT_STEPS (20), CRNN_KIT_WARMUP (3), CRNN_KIT_FILTER (a test-name substring; empty: all tests),
#   CRNN_KIT_RESULTS (bench/results of the checkout).
set -uo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

publish() {
  local repo kit bin lmdb name font
  repo="$(cd "$script_dir/.." && pwd)"
  kit="$repo/publish/gpu-kit"
  bin="$kit/bin"
  rm -rf "$kit" && mkdir -p "$kit" || return 1
  # Not trimmed: trimming breaks ILGPU (kernels are compiled from IL at run time) and the runner's reflection.
  dotnet publish "$repo/tests/Crnn.TestRunner/Crnn.TestRunner.csproj" -c Release -r linux-x64 --self-contained \
    -p:DebugType=none -o "$bin" || return 1
  # The tests' data (vendored models, ready models and samples) are the checkout's: linked at run time.
  rm -rf "$bin/fixtures" "$bin/models"
  echo "compressing (xz, a minute or two)"
  tar -C "$bin" -cf - . | xz -T0 -9 > "$kit/crnn-kit.tar.xz" || return 1
  rm -rf "$bin"
  cp "$repo/tools/gpu-kit.sh" "$repo/bench/peers/pytorch_crnn.py" "$kit/"
  # The DejaVu fonts (Debian's fonts-dejavu-core set): the tests draw with DejaVu Sans and need a second family.
  mkdir -p "$kit/fonts"
  for name in DejaVuSans DejaVuSans-Bold DejaVuSerif DejaVuSansMono; do
    font="$(find_font "$name")"
    if [ -n "$font" ]; then cp "$font" "$kit/fonts/"; else echo "warning: $name.ttf is not installed here (tools/setup.sh)" >&2; fi
  done
  # LMDB 0.9, which crnn loads from the system (Data/LmdbLibrary.cs) and the GPU machine may lack; needs only libc.
  lmdb="$(system_lmdb)"
  if [ -n "$lmdb" ]; then mkdir -p "$kit/lib" && cp -L "$lmdb" "$kit/lib/liblmdb.so.0"
  else echo "warning: no liblmdb.so.0 here (apt-get install liblmdb0); the kit carries none" >&2; fi
  echo "kit: $kit"
  du -sh "$kit"/* | sed 's/^/  /'
  echo "size in all: $(du -sm "$kit" | cut -f1) MiB"
}

# Unpacks the binary into publish/crnn-kit (beside the kit, so that the kit alone is what travels; again when the
# archive is newer) and links the checkout's test data beside it. Prints the binary's path; returns 1 with a
# message when there is no kit or no checkout around it.
unpack() {
  local kit="$1" repo bin
  repo="$(cd "$kit/../.." 2>/dev/null && pwd)"
  [ -f "$repo/Crnn.Gpu.sln" ] || { echo "error: the kit must sit in a checkout (publish/gpu-kit), whose models/ and tests/fixtures the tests read" >&2; return 1; }
  [ -f "$kit/crnn-kit.tar.xz" ] || { echo "error: no $kit/crnn-kit.tar.xz; run 'bash tools/gpu-kit.sh publish' on a machine with .NET" >&2; return 1; }
  bin="$repo/publish/crnn-kit"
  if [ ! -x "$bin/crnn-kit" ] || [ "$kit/crnn-kit.tar.xz" -nt "$bin/.unpacked" ]; then
    rm -rf "$bin" && mkdir -p "$bin" && xz -dc "$kit/crnn-kit.tar.xz" | tar -x -C "$bin" && touch "$bin/.unpacked" || return 1
  fi
  ln -sfn "$repo/models" "$bin/models" && ln -sfn "$repo/tests/fixtures" "$bin/fixtures" && echo "$bin/crnn-kit"
}

# The system's liblmdb.so.0, or nothing.
system_lmdb() { { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | awk '/liblmdb\.so\.0 / {print $NF; exit}'; }

# An installed font file (name without .ttf), or nothing. (find fails on a missing folder: not an error here.)
find_font() { find /usr/share/fonts /usr/local/share/fonts "$HOME/.fonts" -name "$1.ttf" 2>/dev/null | head -n 1 || true; }

# The synthetic-word generator (FontCatalog.SystemFontRoots) and the tests draw with the fonts of the standard
# folders, ~/.fonts included: the kit's DejaVu fonts go to ~/.fonts/dejavu (Debian's layout) unless installed.
install_fonts() {
  local kit="$1" font
  for font in "$kit"/fonts/*.ttf; do
    [ -f "$font" ] && [ -z "$(find_font "$(basename "$font" .ttf)")" ] || continue
    mkdir -p "$HOME/.fonts/dejavu" && cp "$font" "$HOME/.fonts/dejavu/" && echo "font: installed the kit's $(basename "$font") in ~/.fonts/dejavu"
  done
  [ -n "$(find_font DejaVuSans)" ] || echo "warning: no DejaVuSans.ttf installed or in the kit; tests that draw text will fail" >&2
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

# run [tests] [bench] [peer]: the named steps (all three by default), then the combined report from whatever
# result files of today's date and this device exist (so the steps may run in separate calls).
run() {
  local kit repo results device slug date batches steps warmup status=0 selected="${*:-tests bench peer}" exe
  # The kit's own copy of this script sits in the kit; the checkout's in tools/.
  if [ -f "$script_dir/crnn-kit.tar.xz" ]; then kit="$script_dir"; else kit="$(cd "$script_dir/.." && pwd)/publish/gpu-kit"; fi
  for step in $selected; do
    case "$step" in tests|bench|peer) ;; *) echo "error: unknown step '$step' (tests, bench, peer)" >&2; return 2 ;; esac
  done
  exe="$(unpack "$kit")" || return 2
  repo="$(cd "$kit/../.." && pwd)"
  results="${CRNN_KIT_RESULTS:-$repo/bench/results}"
  mkdir -p "$results" && results="$(cd "$results" && pwd)"
  device="${CRNN_KIT_DEVICE:-cuda}"
  batches="${CRNN_KIT_BATCHES:-32 256}"
  steps="${CRNN_KIT_STEPS:-20}"
  warmup="${CRNN_KIT_WARMUP:-3}"
  slug="$(device_slug "$device")"
  date="$(date -u +%Y-%m-%d)"
  local tests_log="$results/$date-$slug-tests.txt" bench_md="$results/$date-$slug-training.md"
  local peer_md="$results/$date-$slug-pytorch.md" peer_log="$results/$date-$slug-pytorch.txt" report="$results/$date-$slug-kit.md"
  local launches_md="$results/$date-$slug-launches.md"
  install_fonts "$kit"
  if [ -z "$(system_lmdb)" ] && [ -f "$kit/lib/liblmdb.so.0" ]; then
    export LD_LIBRARY_PATH="$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && echo "lmdb: using the kit's liblmdb.so.0"
  fi
  echo "== device $device ($slug), steps: $selected; reports in $results"
  "$exe" crnn devices || status=1

  if [[ " $selected " == *" tests "* ]]; then
    echo "== tests (CRNN_TEST_DEVICE=$device${CRNN_KIT_FILTER:+, filter '$CRNN_KIT_FILTER'})"
    local filter=()
    [ -n "${CRNN_KIT_FILTER:-}" ] && filter=(--filter "$CRNN_KIT_FILTER")
    CRNN_TEST_DEVICE="$device" "$exe" "${filter[@]}" > "$tests_log" 2>&1 || status=1
    grep -E '^  (FAIL|SKIP) ' "$tests_log" | head -n 40
    echo "tests: $(tail -n 1 "$tests_log") (log: $tests_log)"
  fi

  if [[ " $selected " == *" bench "* ]]; then
    echo "== crnn bench (batch $batches, $steps steps after $warmup warm-up)"
    # shellcheck disable=SC2086 # the batch sizes are separate arguments
    "$exe" crnn bench --device "$device" --batch-size $batches --steps "$steps" --warmup "$warmup" \
      --output "$bench_md" | grep -E '^batch [0-9]+:' || { echo "crnn bench failed" >&2; status=1; }
    # The launch report of one real batch-256 step on this GPU (on the CPU it is only planned).
    "$exe" crnn bench --launches --device "$device" --kernels gpu --batch-size 256 --output "$launches_md" \
      | grep -E '^launches per step' || { echo "crnn bench --launches failed" >&2; status=1; }
  fi

  if [[ " $selected " == *" peer "* ]]; then
    echo "== PyTorch peer"
    local peer_device=cuda
    [ "$device" = cpu ] && peer_device=cpu
    if ! command -v python3 > /dev/null; then
      echo "peer-note: no python3 here: no PyTorch peer" > "$peer_log"
    else
      # shellcheck disable=SC2086
      python3 "$kit/pytorch_crnn.py" --device "$peer_device" --batch-size $batches --steps "$steps" --warmup "$warmup" \
        --output "$peer_md" > "$peer_log" 2>&1
      case $? in
        0) grep -E '^(eager|compile) ' "$peer_log" ;;
        3) echo "peer-note: torch is not installed here: no PyTorch peer" >> "$peer_log" ;;
        *) echo "peer-note: the PyTorch peer failed (see $(basename "$peer_log"))" >> "$peer_log"; tail -n 5 "$peer_log"; status=1 ;;
      esac
    fi
    grep '^peer-note: ' "$peer_log" | cut -d' ' -f2-
  fi

  write_report "$report" "$device" "$slug" "$tests_log" "$bench_md" "$peer_log" "$batches" "$steps" "$warmup"
  echo "== summary"
  sed -n '/^- tests/p; /^| batch/,$p' "$report"
  echo "report: $report"
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && ! [ "$OUT" -ef "$results" ]; then
    for f in "$tests_log" "$bench_md" "$launches_md" "$peer_md" "$peer_log" "$report"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
  fi
  return $status
}

write_report() {
  local report="$1" device="$2" slug="$3" tests_log="$4" bench_md="$5" peer_log="$6" batches="$7" steps="$8" warmup="$9"
  local cpu gpu b crnn eager compiled ratio
  cpu="$(grep -m 1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
  gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 | sed 's/, \([^,]*\)$/, driver \1/')"
  {
    echo "# GPU kit run: crnn vs PyTorch, training steps ($(date -u +%Y-%m-%d), $slug)"
    echo
    echo "- machine: $(hostname), ${cpu:-unknown CPU}, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null); GPU: ${gpu:-none}"
    echo "- device: $device; $steps measured steps after $warmup warm-up per batch size; seed model, Adam 5e-4, float32"
    if [ -f "$tests_log" ]; then echo "- tests (CRNN_TEST_DEVICE=$device): $(tail -n 1 "$tests_log") ($(basename "$tests_log"))"
    else echo "- tests: not run"; fi
    echo "- crnn: \`crnn bench\`, synthetic words rendered during the steps as \`crnn train\` runs ($(basename "$bench_md"));" \
         "PyTorch: bench/peers/pytorch_crnn.py, random images and labels made on the device beforehand, cuDNN, TF32 off"
    grep '^peer-note: ' "$peer_log" 2>/dev/null | sed 's/^peer-note: /- /'
    grep -o '"compile": "[^"]*"' "$peer_log" 2>/dev/null | sed 's/^"compile": /- torch.compile failed: /'
    echo "- reproduce: \`bash tools/gpu-kit.sh publish\` with .NET, then \`CRNN_KIT_DEVICE=$device CRNN_KIT_BATCHES=\"$batches\" CRNN_KIT_STEPS=$steps CRNN_KIT_WARMUP=$warmup bash tools/gpu-kit.sh run\`"
    echo
    echo "| batch | crnn (ILGPU) images/s | PyTorch eager images/s | PyTorch compile images/s | crnn / eager |"
    echo "|---:|---:|---:|---:|---:|"
    for b in $batches; do
      crnn="$(crnn_rates "$bench_md" 2>/dev/null | awk -v b="$b" '$1 == b {print $2}')"
      eager="$(peer_rates "$peer_log" | awk -v b="$b" '$1 == "eager" && $2 == b {print $3}')"
      compiled="$(peer_rates "$peer_log" | awk -v b="$b" '$1 == "compile" && $2 == b {print $3}')"
      ratio="–"
      [ -n "$crnn" ] && [ -n "$eager" ] && ratio="$(awk -v c="$crnn" -v e="$eager" 'BEGIN {printf "%.3g", c / e}')"
      echo "| $b | ${crnn:-–} | ${eager:-–} | ${compiled:-–} | $ratio |"
    done
  } > "$report"
}

case "${1:-}" in
  publish) publish ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash tools/gpu-kit.sh publish | run [tests] [bench] [peer]" >&2; exit 2 ;;
esac
