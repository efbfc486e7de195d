#!/usr/bin/env bash
# Installs the fonts the synthetic text generator renders with — ~100 families, 531 files: sans, serif, slab,
# mono, condensed, display, script and handwriting (DejaVu, Liberation, FreeFont, Croscore, Noto, URW base 35,
# Inter, Lato, Open Sans, the ADF families, Bebas Neue, Lobster, Dancing Script, Comic Neue, …) — and LMDB 0.9 (liblmdb0: the public LMDB datasets are in its format, see src/Crnn.Engine/Data/LmdbLibrary.cs)
# when they are missing and apt-get is usable. Idempotent and quiet; fast when everything is installed.
# A failure is a warning, not an error: the generator falls back to whatever fonts exist.
set -uo pipefail
# Never Lora, Roboto Slab or Courier Prime (fonts-roboto-slab, fonts-courier-prime): reserved for evaluation.
packages=(fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-croscore fonts-noto-core liblmdb0
  fonts-urw-base35 fonts-lobster fonts-lobstertwo fonts-comic-neue fonts-roboto fonts-cantarell fonts-sil-andika
  fonts-linuxlibertine fonts-crosextra-caladea fonts-crosextra-carlito fonts-firacode fonts-hack fonts-inconsolata
  fonts-lato fonts-open-sans fonts-breip fonts-dkg-handwriting fonts-humor-sans fonts-yanone-kaffeesatz
  fonts-comfortaa fonts-oldstandard fonts-go fonts-cabin fonts-bebas-neue fonts-league-spartan fonts-jetbrains-mono
  fonts-dancingscript fonts-femkeklaver fonts-averia-gwf fonts-averia-sans-gwf fonts-averia-serif-gwf
  fonts-adf-accanthis fonts-adf-gillius fonts-adf-baskervald fonts-adf-universalis fonts-adf-tribun fonts-adf-mekanus
  fonts-adf-romande fonts-adf-oldania fonts-adf-berenis fonts-adf-irianis fonts-adf-libris fonts-adf-switzera
  fonts-adf-verana fonts-cardo fonts-ebgaramond fonts-kristi fonts-isabella fonts-tomsontalks fonts-blankenburg
  fonts-dustin fonts-radisnoir fonts-fantasque-sans fonts-beteckna fonts-play fonts-mononoki fonts-quicksand fonts-inter)

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
