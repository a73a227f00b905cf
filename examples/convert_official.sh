#!/usr/bin/env bash
# Convert the official LaVin-DiT release (weights.tar.gz from DerrickWang005/LaVin-DiT, unpacked)
# into lavin's format, then export it back to the official layout to check the round trip.
#   usage: examples/convert_official.sh path/to/weights/ out/
set -euo pipefail
src=${1:?folder with lavin_dit.safetensors and stvae.pt}
out=${2:?output folder}
lavin convert --dit "$src/lavin_dit.safetensors" --vae "$src/stvae.pt" -o "$out/lavin"
lavin convert --dit "$out/lavin/dit.safetensors" --vae "$out/lavin/vae.safetensors" --to official -o "$out/official"
cmp "$src/lavin_dit.safetensors" "$out/official/lavin_dit.safetensors" \
  && echo "DiT round trip is byte-identical" \
  || echo "DiT round trip differs in bytes (tensor order/metadata); compare tensors with safetensors"
