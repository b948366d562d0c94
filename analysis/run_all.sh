#!/usr/bin/env bash
# Regenerate every figure in the README (about 35 minutes on the 2-core CPU machine).
# Results: analysis/results/*.json (and the tables printed to analysis/results/*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p analysis/results
python -m analysis.models_report --samples 512 --grids | tee analysis/results/models.log
for m in glyph-unet glyph-dit; do
  python -m analysis.bench_table --model "$m" --samples 128 --repeats 4 | tee "analysis/results/bench-$m.md"
done
python -m analysis.dpmsolver --model glyph-unet --samples 128 | tee analysis/results/dpmsolver-glyph-unet.md
