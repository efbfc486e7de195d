#!/usr/bin/env bash
# Packs the two NuGet packages into artifacts/packages (git-ignored), each with its symbol package (.snupkg):
#   Crnn.Gpu       the library (src/Crnn.Engine, with Crnn.Kernels.dll inside)
#   Crnn.Gpu.Tool  the `crnn` .NET tool (src/Crnn.Cli)
# The version is Directory.Build.props' <Version>. Prints one line per package file: its path and size in bytes.
# Extra arguments go to both `dotnet pack` calls (e.g. -p:Version=0.1.1-dev).
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=artifacts/packages
mkdir -p "$out" || exit 1
status=0
for project in src/Crnn.Engine src/Crnn.Cli; do
  log=$(mktemp)
  if ! dotnet pack "$project" -c Release -o "$out" "$@" > "$log" 2>&1; then
    cat "$log" >&2
    echo "pack: $project failed" >&2
    status=1
  fi
  rm -f "$log"
done
# The files of this version (an older version's packages may still lie there).
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n 1)
for arg in "$@"; do case "$arg" in -p:Version=*) version=${arg#-p:Version=} ;; esac; done
for id in Crnn.Gpu Crnn.Gpu.Tool; do
  for ext in nupkg snupkg; do
    f="$out/$id.$version.$ext"
    if [ -f "$f" ]; then echo "$f $(stat -c %s "$f") bytes"
    else echo "pack: missing $f" >&2; status=1; fi
  done
done
exit $status
