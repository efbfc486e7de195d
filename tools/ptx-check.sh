#!/usr/bin/env bash
# PTX assembled, not only generated. PtxCompileTests (with CRNN_PTX_DIR set) writes every *Kernel's PTX for
# sm_80 and sm_90; NVIDIA's ptxas assembles each one. Fails on any ptxas error or register spill; prints
# registers, spills, stack and static shared memory per kernel and a summary line.
# ptxas comes from Debian bookworm's non-free nvidia-cuda-toolkit (CUDA 11.8), fetched into a cache folder with a
# private apt configuration: nothing is installed and the host's apt setup is neither read nor changed. When it
# cannot be fetched (no apt, no network) the script says why in one line and exits 0.
#   bash tools/ptx-check.sh            (CRNN_PTXAS=/path/to/ptxas uses that ptxas instead)
set -uo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/crnn/ptxas"
ptxas="${CRNN_PTXAS:-$cache/bin/ptxas}"
out="artifacts/ptx"
archs="sm_80 sm_90"

first_error() { { grep -E '^(E|W):' "$1"; tail -n 1 "$1"; echo 'failed without a message'; } | grep . | head -n 1; }

# Downloads nvidia-cuda-toolkit (84 MB; ptxas is in it, needing only libc) and keeps only usr/bin/ptxas.
# On failure prints the reason and returns 1.
fetch_ptxas() {
  local apt="$cache/apt" keyring=/usr/share/keyrings/debian-archive-keyring.gpg log deb
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "no apt-get/dpkg-deb on this machine"; return 1; }
  [ -f "$keyring" ] || { echo "no $keyring to verify Debian's packages"; return 1; }
  mkdir -p "$apt/empty" "$apt/state/lists/partial" "$apt/cache/archives/partial" "$cache/bin" || { echo "cannot write $cache"; return 1; }
  : > "$apt/state/status"   # an empty dpkg status: apt-get download needs one, not the host's
  echo "deb [signed-by=$keyring] ${CRNN_DEBIAN_MIRROR:-http://deb.debian.org/debian} bookworm non-free" > "$apt/sources.list"
  # APT_CONFIG is read first; pointing Parts/main at an empty folder keeps the host's apt.conf.d (and its hooks) out.
  cat > "$apt/apt.conf" <<EOF
Dir::Etc::main "$apt/empty/none"; Dir::Etc::Parts "$apt/empty";
Dir::Etc::SourceList "$apt/sources.list"; Dir::Etc::SourceParts "$apt/empty";
Dir::Etc::Preferences "$apt/empty/none"; Dir::Etc::PreferencesParts "$apt/empty";
Dir::State "$apt/state"; Dir::State::status "$apt/state/status"; Dir::Cache "$apt/cache";
APT::Sandbox::User "$(id -un)"; Acquire::Languages "none";
EOF
  log="$apt/log"
  export APT_CONFIG="$apt/apt.conf"
  # apt-get update exits 0 when a fetch fails (it only warns): any W:/E: line counts as a failure here.
  if ! apt-get -q update >"$log" 2>&1 || grep -qE '^(E|W):' "$log"; then echo "apt-get update (bookworm non-free): $(first_error "$log")"; return 1; fi
  (cd "$apt/cache/archives" && rm -f ./*.deb && apt-get -q download nvidia-cuda-toolkit) >"$log" 2>&1 \
    || { echo "apt-get download nvidia-cuda-toolkit: $(first_error "$log")"; return 1; }
  deb="$(ls "$apt"/cache/archives/nvidia-cuda-toolkit_*.deb)"
  rm -rf "$cache/x" && mkdir -p "$cache/x" &&
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$cache/x" ./usr/bin/ptxas &&
    mv "$cache/x/usr/bin/ptxas" "$ptxas" || { echo "no usr/bin/ptxas in $(basename "$deb")"; return 1; }
  rm -rf "$cache/x" "$deb"
}

if [ ! -x "$ptxas" ]; then
  [ -z "${CRNN_PTXAS:-}" ] || { echo "ptx-check: CRNN_PTXAS=$CRNN_PTXAS is not executable" >&2; exit 1; }
  if ! why="$(fetch_ptxas)"; then echo "ptx-check: skipped, ptxas unavailable: $why"; exit 0; fi
  echo "ptx-check: fetched ptxas (nvidia-cuda-toolkit, Debian bookworm non-free) into $cache"
fi
version="$("$ptxas" --version | grep -o 'V[0-9][0-9.]*' | head -n 1)"

# Generate the PTX (builds what it needs on a clean clone).
rm -rf "$out" && mkdir -p "$out"
log="$out/dotnet-test.log"
if ! CRNN_PTX_DIR="$PWD/$out" dotnet test tests/Crnn.Kernels.Tests -c Release --nologo \
    --filter "FullyQualifiedName~PtxCompileTests.CompilesToPtx" >"$log" 2>&1; then
  tail -n 30 "$log"; echo "ptx-check: PTX generation failed (log: $log)"; exit 1
fi

printf '%-44s %-6s %5s %12s %6s %6s\n' kernel arch regs "spill st/ld" stack smem
n=0; failed=0; spilled=0; maxregs=0; maxat=""; maxsmem=0
for f in "$out"/*.ptx; do
  [ -f "$f" ] || continue
  base="$(basename "$f" .ptx)"; kernel="${base%.*}"; arch="${base##*.}"
  # ILGPU 1.5.3 writes the PTX ISA of the driver (8.x); ptxas 11.8 reads up to 7.8. Only this line differs.
  # (.target stays ILGPU's: sm_80 for both, the lowest that has every capability; the driver JITs it likewise.)
  sed -i 's/^\.version .*/.version 7.8/' "$f"
  if ! info="$("$ptxas" -v -arch="$arch" -o "$out/$base.cubin" "$f" 2>&1)"; then
    printf '%-44s %-6s  ptxas FAILED\n' "$kernel" "$arch"; sed 's/^/    /' <<<"$info"
    failed=$((failed + 1)); n=$((n + 1)); continue
  fi
  # "Used R registers, S bytes smem" (entry); "F bytes stack frame, X bytes spill stores, Y bytes spill loads"
  # (every function, summed).
  read -r regs st ld stack smem <<<"$(awk '
    /bytes stack frame/ { for (i = 1; i < NF; i++) { if ($(i+2) == "stack") k += $i;
                          if ($(i+3) ~ /^stores/) s += $i; if ($(i+3) ~ /^loads/) l += $i } }
    /Used [0-9]+ registers/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^registers/) r = $i; if ($(i+2) ~ /^smem/) m = $i } }
    END { print r+0, s+0, l+0, k+0, m+0 }' <<<"$info")"
  mark=""; if [ "$st" -gt 0 ] || [ "$ld" -gt 0 ]; then mark="  SPILLS"; spilled=$((spilled + 1)); fi
  printf '%-44s %-6s %5d %12s %6d %6d%s\n' "$kernel" "$arch" "$regs" "$st/$ld" "$stack" "$smem" "$mark"
  grep -i 'warning' <<<"$info" | sed 's/^/    /'
  if [ "$regs" -gt "$maxregs" ]; then maxregs=$regs; maxat="$kernel $arch"; fi
  [ "$smem" -gt "$maxsmem" ] && maxsmem=$smem
  n=$((n + 1))
done

[ "$n" -gt 0 ] || { echo "ptx-check: no PTX was written to $out"; exit 1; }
verdict=OK; [ "$failed" -eq 0 ] && [ "$spilled" -eq 0 ] || verdict=FAILED
echo "ptx-check: $verdict, $n PTX files ($archs) through ptxas $version: $failed failed to assemble, $spilled spill;" \
  "max $maxregs registers ($maxat), max static shared memory $maxsmem bytes"
[ "$verdict" = OK ]
