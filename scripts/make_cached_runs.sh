#!/usr/bin/env bash
# Regenerates cached_runs/: the course protocol trained with adlapp's own CLI on the built-in data.
#   CNN:   cnn/bn-adam, cnn/adam, cnn/sgd x SEEDS seeds x 200 epochs (cards)
#   U-Net: unet/normal, unet/nearest, unet/elu, unet/nearest-elu x SEEDS seeds x 1000 epochs, test at 200/400/1000
# The two experiments train side by side, one CPU thread each (on 2 cores that beats two threads per run,
# the models being small). Interrupted? Run it again: finished runs are found in the store, not retrained.
# Usage: bash scripts/make_cached_runs.sh [STORE_DIR]      (SEEDS=5 by default; DEVICE=auto)
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${1:-runs/cached-study}
SEEDS=${SEEDS:-5}
DEVICE=${DEVICE:-auto}
THREADS=${THREADS:-1}
mkdir -p "$STORE"

cnn() {
  for seed in $(seq 0 $((SEEDS - 1))); do
    for v in bn-adam adam sgd; do
      python -m adlapp train cnn --variant "$v" --seeds "$seed," --epochs 200 --device "$DEVICE" \
        --threads "$THREADS" --store "$STORE"
    done
  done
}
unet() {
  for seed in $(seq 0 $((SEEDS - 1))); do
    for v in normal nearest elu nearest-elu; do
      python -m adlapp train unet --variant "$v" --seeds "$seed," --epochs 1000 --eval-at 200,400 \
        --device "$DEVICE" --threads "$THREADS" --store "$STORE"
    done
  done
}
cnn > "$STORE/cnn.log" 2>&1 &
unet > "$STORE/unet.log" 2>&1 &
wait
python -m adlapp export --store "$STORE" --experiment cnn --out cached_runs/course-cnn.zip
python -m adlapp export --store "$STORE" --experiment unet --out cached_runs/course-unet.zip
