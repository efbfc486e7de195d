#!/usr/bin/env bash
# Installs the fonts the synthetic text generator renders with (DejaVu, Liberation, FreeFont, Croscore, Noto)
# and LMDB 0.9 (liblmdb0: the public LMDB datasets are in its format, see src/Crnn.Engine/Data/LmdbLibrary.cs)
# when they are missing and apt-get is usable. Idempotent and quiet; fast when everything is installed.
# A failure is a warning, not an error: the generator falls back to whatever fonts exist.
set -uo pipefail
packages=(fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-croscore fonts-noto-core liblmdb0)

command -v apt-get >/dev/null 2>&1 || exit 0
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
    echo "warning: ${missing[*]} missing and not root without sudo; synthetic data uses the fonts present, LMDB input needs liblmdb0" >&2
    exit 0
  fi
fi
if ! ("${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null 2>&1; then
  echo "warning: could not install ${missing[*]}; synthetic data uses the fonts present, LMDB input needs liblmdb0" >&2
fi
exit 0
