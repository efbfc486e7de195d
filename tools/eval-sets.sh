#!/usr/bin/env bash
# Scores a model on the evaluation sets every trained model is reported on:
#   - data/real-crops: 204 word crops from photographs (see its README; evaluation only, never trained on);
#   - held-out font: 1 000 synthetic words in Noto Serif, the family the generator never trains on
#     (crnn synth --seed 777; rendered once into runs/eval-sets/ and reused: delete it after changing the generator);
#   - held-out font, mild: the same 1 000 words with only noise, blur and small rotations (--effects mild), the
#     style of the issue's hidden held-out set; the default effects make a set even PaddleOCR's model reads at 75 %.
# All with --benchmark-convention (lower case, letters and digits). Usage: tools/eval-sets.sh MODEL_DIR [crnn…]
# where the optional rest is the crnn command to run (default: dotnet run on the CLI project, Release).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/eval-sets.sh MODEL_DIR [crnn command…]}
shift
crnn=("$@")
[ ${#crnn[@]} -eq 0 ] && crnn=(dotnet run --project src/Crnn.Cli -c Release --)
heldout=runs/eval-sets/heldout-noto-serif
mild=runs/eval-sets/heldout-noto-serif-mild
for set in "$heldout:default" "$mild:mild"; do
  if [ ! -f "${set%%:*}/labels.txt" ]; then
    "${crnn[@]}" synth --count 1000 --seed 777 --effects "${set##*:}" --output "${set%%:*}" \
      --fonts '/usr/share/fonts/truetype/noto/NotoSerif-*.ttf' >/dev/null
  fi
done
"${crnn[@]}" eval --model "$model" --benchmark-convention --data data/real-crops/labels.txt --data "$heldout/labels.txt" --data "$mild/labels.txt"
