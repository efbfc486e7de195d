#!/usr/bin/env bash
# Runs the kernel and engine tests on ILGPU's OpenCL backend, with PoCL (OpenCL on the CPU) as the device, so
# the OpenCL code path is tested on any Linux box. Bookworm's PoCL 3.1 lacks the generic address space ILGPU
# needs; trixie's PoCL 6 has it but needs trixie's glibc, so it runs in a trixie chroot, made once and cached
# in $CRNN_POCL_ROOT (default ~/.cache/crnn/pocl-trixie). Tests are built on the host and run inside with the
# host's dotnet, NuGet cache and checkout bind-mounted. PoCL never goes on the host: Device.Open() would
# then prefer it to the CPU accelerator.
# Prints per-assembly counts, then "pocl: N passed, N failed, N skipped" last. Exits 1 on a failure; when the
# chroot cannot be made (not root, mirror unreachable) prints one "pocl: skipped: why" line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
root=${CRNN_POCL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/crnn/pocl-trixie}
mirror=${CRNN_POCL_MIRROR:-http://deb.debian.org/debian}
# ocl-icd-opencl-dev: the unversioned libOpenCL.so that .NET's P/Invoke looks for. libicu/libssl: the dotnet
# CLI. liblmdb0: the LMDB dataset tests.
packages=(pocl-opencl-icd ocl-icd-opencl-dev clinfo libicu76 libssl3t64 ca-certificates liblmdb0)
projects=(tests/Crnn.Kernels.Tests tests/Crnn.Engine.Tests)
# Tests too slow under PoCL, left out by filter and counted as skipped. OverfitsEightImagesFromALabelFile:
# 300 full-model training steps at ≈ 2.5 images/s, 12-15 min alone; it tests convergence, not OpenCL (the
# OpenCL training step is checked against the float64 reference, and resume for bit-identity, by tests that run).
slow=(Crnn.Engine.Tests.TrainerTests.OverfitsEightImagesFromALabelFile)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

skip() { echo "pocl: skipped: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount)"
command -v dotnet >/dev/null || { echo "pocl: dotnet not found" >&2; exit 1; }
dotnet_dir=$(dirname "$(readlink -f "$(command -v dotnet)")")
nuget=${NUGET_PACKAGES:-$HOME/.nuget/packages}
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"; flock 9   # one run at a time owns the chroot and its mounts
log=$root.log
ready="$root/.crnn-pocl-ready" # written last, holding the package list: without it a chroot is half made

mounts=()
unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
  done
  mounts=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM
# A run killed outright (no trap) leaves its mounts; we hold the lock, so any under the chroot are stale.
for m in $(awk -v r="$root" 'index($2, r "/") == 1 || index($2, r ".partial/") == 1 { print $2 }' /proc/mounts | sort -r); do
  umount "$m" 2>/dev/null || umount -l "$m"
done
bind() { # bind SRC DIR-IN-CHROOT [ro]
  mkdir -p "$2" && mount --bind "$1" "$2" && mounts+=("$2") || return 1
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}
system_mounts() { # the kernel file systems apt, PoCL (hwloc reads /sys) and dotnet expect
  mount -t proc proc "$1/proc" && mounts+=("$1/proc") && bind /sys "$1/sys" ro && bind /dev "$1/dev"
}
# Deleting a chroot with a bind mount still inside would delete the host's files through it.
remove_tree() {
  if grep -q " $1/" /proc/mounts; then echo "pocl: $1 still has mounts, not removing it" >&2; exit 1; fi
  rm -rf "$1"
}

make_chroot() {
  local tmp=$root.partial start=$SECONDS
  remove_tree "$tmp"
  if ! command -v debootstrap >/dev/null; then
    { apt-get install -y -qq debootstrap || { apt-get update -qq && apt-get install -y -qq debootstrap; }; } >"$log" 2>&1 \
      || skip "cannot install debootstrap on the host (see $log)"
  fi
  echo "pocl: making the trixie chroot in $root (once; a few minutes)"
  debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$log" 2>&1 \
    || { remove_tree "$tmp"; skip "debootstrap of trixie from $mirror failed: $(grep -m1 -E '^E:|W: Failure' "$log" || tail -n1 "$log") (see $log)"; }
  system_mounts "$tmp" || { unmount_all; remove_tree "$tmp"; skip "cannot mount /proc, /sys, /dev in $tmp"; }
  chroot "$tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
      "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages[*]} && apt-get clean" >>"$log" 2>&1
  local status=$?
  unmount_all
  [ $status -eq 0 ] || { remove_tree "$tmp"; skip "installing PoCL in the trixie chroot failed (see $log)"; }
  echo "${packages[*]}" >"$tmp/.crnn-pocl-ready"
  mv "$tmp" "$root"
  echo "pocl: chroot made in $((SECONDS - start)) s"
}

if [ -f "$ready" ] && [ "$(cat "$ready")" = "${packages[*]}" ] && chroot "$root" /bin/true 2>/dev/null; then
  echo "pocl: reusing the chroot in $root"
else
  remove_tree "$root"
  make_chroot
fi

# Build on the host, where the SDK and NuGet feeds are; the chroot only runs what was built.
tools/setup.sh # the fonts the synthetic-word tests render with, bind-mounted below
start=$SECONDS
for p in "${projects[@]}"; do
  dotnet build "$p" -c Release -v q -nologo || { echo "pocl: build of $p failed" >&2; exit 1; }
done
echo "pocl: built in $((SECONDS - start)) s"

# Same paths inside as outside: the build's deps.json, assets and test adapter paths are absolute.
system_mounts "$root" || { echo "pocl: cannot mount /proc, /sys, /dev in $root" >&2; exit 1; }
bind "$dotnet_dir" "$root$dotnet_dir" ro && bind "$nuget" "$root$nuget" ro && bind "$repo" "$root$repo" \
  || { echo "pocl: cannot bind-mount dotnet, NuGet cache and checkout into $root" >&2; exit 1; }
if [ -d /usr/share/fonts ]; then bind /usr/share/fonts "$root/usr/share/fonts" ro || exit 1; fi
in_chroot() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH="$dotnet_dir:/usr/bin:/bin" DOTNET_ROOT="$dotnet_dir" \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_WORKLOAD_INTEGRITY_CHECK=true NUGET_PACKAGES="$nuget" \
    CRNN_TEST_DEVICE=opencl "$@"
}

# ILGPU takes only OpenCL devices with the generic address space (OpenCL 3.0 optional feature).
info=$(in_chroot clinfo 2>&1)
if ! grep -q "Portable Computing Language" <<<"$info" || ! grep -Eq "Generic address space support +Yes" <<<"$info"; then
  skip "no PoCL device with generic address space in the chroot (clinfo: $(grep -m1 -E 'Device Name|Number of platforms' <<<"$info"))"
fi
echo "pocl: device $(grep -m1 'Device Name' <<<"$info" | sed 's/ *Device Name *//'), $(grep -m1 'Device Version' <<<"$info" | sed 's/ *Device Version *//')"

results=/tmp/crnn-pocl-results # inside the chroot
rm -rf "$root$results"
status=0
start=$SECONDS
for p in "${projects[@]}"; do
  name=$(basename "$p")
  args=(test "$repo/$p" -c Release --no-build --logger "trx;LogFileName=$name.trx" --results-directory "$results")
  filter=$(printf 'FullyQualifiedName!=%s&' "${slow[@]}")
  [ ${#slow[@]} -eq 0 ] || args+=(--filter "${filter%&}")
  in_chroot dotnet "${args[@]}" || status=1
done
echo "pocl: tests ran in $((SECONDS - start)) s"

passed=0; failed=0; skipped=0; total=0
for p in "${projects[@]}"; do
  name=$(basename "$p")
  trx="$root$results/$name.trx"
  counters=$(grep -o '<Counters [^>]*>' "$trx" 2>/dev/null | head -n 1)
  get() { local v; v=$(grep -o " $1=\"[0-9]*\"" <<<"$counters" | grep -o '[0-9]*'); echo "${v:-0}"; }
  p_pass=$(get passed)
  p_fail=$(( $(get failed) + $(get error) + $(get timeout) + $(get aborted) ))
  p_skip=$(( $(get notExecuted) + $(printf '%s\n' "${slow[@]}" | grep -c "^$name\.") ))
  [ -n "$counters" ] || { echo "$name: no results (the run did not finish)"; failed=$((failed + 1)); continue; }
  echo "$name: $p_pass passed, $p_fail failed, $p_skip skipped"
  passed=$((passed + p_pass)); failed=$((failed + p_fail)); skipped=$((skipped + p_skip)); total=$((total + $(get total)))
done
[ "$total" -gt 0 ] || status=1
[ "$failed" -eq 0 ] || status=1
[ ${#slow[@]} -eq 0 ] || echo "pocl: skipped as too slow under PoCL: ${slow[*]}"
echo "pocl: $passed passed, $failed failed, $skipped skipped"
exit $status
