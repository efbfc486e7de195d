#!/usr/bin/env bash
# Builds examples/ReadImages and examples/FineTune against the packed Crnn.Gpu package (run tools/pack.sh first),
# with a package cache of their own (examples/.packages, emptied first, so a re-pack of the same version is used),
# then runs ReadImages on a sample image with the ready model. Last line: "examples: ok" or why not.
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n 1)
[ -f "artifacts/packages/Crnn.Gpu.$version.nupkg" ] || { echo "examples: no artifacts/packages/Crnn.Gpu.$version.nupkg (run tools/pack.sh)" >&2; exit 1; }
rm -rf examples/.packages
for example in ReadImages FineTune; do
  dotnet build "examples/$example" -c Release -v q -nologo || { echo "examples: $example does not build against Crnn.Gpu $version" >&2; exit 1; }
done
read=$(dotnet run --project examples/ReadImages -c Release --no-build -- models/en-number-mobile models/samples/outwardly.png) \
  || { echo "examples: ReadImages failed" >&2; exit 1; }
echo "$read"
grep -q $'\toutwardly\t' <<<"$read" || { echo "examples: ReadImages did not read 'outwardly'" >&2; exit 1; }
echo "examples: ok"
