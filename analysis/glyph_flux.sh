#!/usr/bin/env bash
# glyph-flux: every figure docs/results.md gives for it, in order, on a 2-core CPU (about 60 min).
# Train first (resumable; one thread leaves a core for other work):
#   python -m frdiff train --model glyph-flux --steps 100000 --batch 32 --lr 4e-4 --threads 1 \
#     --max-minutes 140 --run-dir runs/glyph-flux --export assets/glyph-flux
# (a later session: --init-from assets/glyph-flux --run-dir runs/glyph-flux-2 to go on)
set -euo pipefail
P=frdiff/glyphs/assets/policies/glyph-flux-euler28
python -m frdiff evaluate --model glyph-flux --samples 128
python -m analysis.models_report --models glyph-flux --samples 256 --grids
python -m analysis.calibrate --models glyph-flux --configs euler:28
python -m analysis.ship_policies --model glyph-flux --configs euler:28 --speedups 1.5 2.0 2.5 3.0 --iterations 20
python -m frdiff sweep --model glyph-flux --steps 28 --peers all --batch 4 --fewer-steps 19,14,11,9 \
  --policies $P-1.5x.json,$P-2.0x.json,$P-2.5x.json,$P-3.0x.json,uniform:2,uniform:3:residual,magnitude:0.12,magnitude:0.24 \
  --out analysis/results/sweep-peers-glyph-flux-euler28.json
python -m frdiff sweep --model glyph-flux --steps 28 --batch 4 --fewer-steps 14 --out analysis/results/sweep-frdiff-on-dpm-glyph-flux-euler28.json \
  --policies dpmsolver@28:uniform:2,dpmsolver@28:uniform:3:residual,dpmsolver@19:uniform:2,dpmsolver@14:uniform:2
# DBCache at warm-ups suited to 28 steps (added after the first sweep)
python -m frdiff sweep --model glyph-flux --steps 28 --batch 4 --fewer-steps 14 --policies uniform:2 \
  --peers dbcache,dbcache-taylorseer --out analysis/results/sweep-dbcache-glyph-flux-euler28.json
python -m analysis.pareto_plot --results analysis/results/sweep-peers-glyph-flux-euler28.json --rerun '' \
  --extra analysis/results/sweep-frdiff-on-dpm-glyph-flux-euler28.json --extra analysis/results/sweep-dbcache-glyph-flux-euler28.json \
  --out assets/pareto-glyph-flux.png
python -m analysis.results_doc
