#!/usr/bin/env bash
# Regenerate every figure in README.md and docs/results.md (3-4 hours on the 2-core CPU machine; the models themselves are not retrained).
# Results: analysis/results/*.json (and the tables printed to analysis/results/*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p analysis/results
python -m analysis.models_report --samples 512 --grids | tee analysis/results/models.log
for m in glyph-unet glyph-dit; do
  python -m analysis.bench_table --model "$m" --samples 128 --repeats 4 | tee "analysis/results/bench-$m.md"
done
# the hook-overhead rows, alone and with more pairs than the tables use
python -m frdiff bench --model glyph-unet --policy uniform:1 --repeats 8 --samples 16 --json > analysis/results/bench-unet-uniform1.json
python -m frdiff bench --model glyph-dit --policy uniform:1 --repeats 8 --samples 16 --json > analysis/results/bench-dit-uniform1.json
python -m analysis.dpmsolver --model glyph-unet --samples 128 | tee analysis/results/dpmsolver-glyph-unet.md
# Auto-FR: tune the shipped policies, then compare them with uniform ones and with DeepCache.
# (The current search includes the "no call" family; the shipped glyph-unet DPM-Solver++ 1.5x/2.0x
# files predate it, see docs/results.md, so a rerun may differ there. The policy and DeepCache
# tables of docs/results.md measured the glyph-unet DDIM-50 files shipped before their re-tune,
# kept in analysis/results/reuse-policies/: a rerun of these lines measures the current ones.)
python -m analysis.ship_policies --model glyph-unet --configs ddim:50 dpmsolver:20
python -m frdiff tune --model glyph-unet --steps 50 --target-speedup 2.6 --per-block \
  --out analysis/results/policy-glyph-unet-ddim50-2.6x.json
python -m frdiff tune --model glyph-unet --steps 50 --target-speedup 2.0 \
  --out analysis/results/policy-glyph-unet-ddim50-2.0x-per-step.json
python -m analysis.policy_table --model glyph-unet --samples 64 --repeats 3 \
  --policies assets/policies/glyph-unet-ddim50-{1.5,2.0,2.5}x.json --out analysis/results/policies-bench-glyph-unet-ddim.json
python -m analysis.policy_table --model glyph-unet --samples 64 --repeats 3 \
  --policies assets/policies/glyph-unet-dpmsolver20-{1.5,2.0,2.5}x.json analysis/results/policy-glyph-unet-ddim50-2.0x-per-step.json \
  --out analysis/results/policies-bench-glyph-unet-dpm.json
python -m analysis.deepcache --samples 64 --repeats 3 --intervals 2,3,4 --branch-ids 0,1 \
  --policy uniform:2 --policy uniform:3 \
  --policy assets/policies/glyph-unet-ddim50-1.5x.json --policy assets/policies/glyph-unet-ddim50-2.0x.json \
  --policy assets/policies/glyph-unet-ddim50-2.5x.json --policy analysis/results/policy-glyph-unet-ddim50-2.6x.json \
  --policy analysis/results/policy-glyph-unet-ddim50-2.0x-per-step.json \
  --policy adaptive:0.1 --policy adaptive:0.4 --policy adaptive:0.1:skip --out analysis/results/deepcache
python -m analysis.deepcache --samples 64 --repeats 8 --intervals 3,4 --branch-ids 0 \
  --policy assets/policies/glyph-unet-ddim50-2.0x.json --policy assets/policies/glyph-unet-ddim50-2.5x.json \
  --policy analysis/results/policy-glyph-unet-ddim50-2.6x.json --out analysis/results/deepcache-focus
# glyph-dit: shipped policies and their comparison with uniform ones
python -m analysis.ship_policies --model glyph-dit --configs ddim:50 dpmsolver:20
python -m analysis.policy_table --model glyph-dit --samples 64 --repeats 3 \
  --policies assets/policies/glyph-dit-ddim50-{1.5,2.0,2.5}x.json --out analysis/results/policies-bench-glyph-dit-ddim.json
python -m analysis.policy_table --model glyph-dit --samples 64 --repeats 3 \
  --policies assets/policies/glyph-dit-dpmsolver20-{1.5,2.0,2.5}x.json --out analysis/results/policies-bench-glyph-dit-dpm.json
python -m analysis.policy_table --model glyph-dit --samples 256 --repeats 2 \
  --policies assets/policies/glyph-dit-ddim50-2.0x.json --out analysis/results/policies-bench-glyph-dit-ddim-2.0x-256.json
python -m analysis.policy_table --model glyph-dit --samples 1024 --repeats 1 \
  --policies assets/policies/glyph-dit-ddim50-2.0x.json --out analysis/results/policies-bench-glyph-dit-ddim-2.0x-1024.json
# the plain sampler with fewer steps, same samples and protocol as the DeepCache table
python -m analysis.deepcache --samples 64 --repeats 3 --intervals '' --branch-ids '' \
  --fewer-steps 38,33,29,25,22,20,17 --threads 2 --out analysis/results/fewer-steps
python -m analysis.pareto_plot
# glyph-dit: uniform, whole-block, tuned and fewer steps in one sweep, and its Pareto figure
python -m frdiff sweep --model glyph-dit --steps 50 \
  --policies uniform:2,uniform:3,uniform:4,deep:2,deep:3,assets/policies/glyph-dit-ddim50-1.5x.json,assets/policies/glyph-dit-ddim50-2.0x.json,assets/policies/glyph-dit-ddim50-2.5x.json \
  --fewer-steps 33,25,20,17 --samples 64 --repeats 3 --out analysis/results/sweep-glyph-dit.json
python -m analysis.pareto_plot --results analysis/results/sweep-glyph-dit.json --rerun '' --extra '' \
  --out assets/pareto-glyph-dit.png
python -m analysis.temporal_similarity
python -m analysis.spectra --interval 3 --samples 64 --threads 2
python -m analysis.spectra --interval 2 --samples 64 --threads 2 --out analysis/results/spectra-interval2.png \
  --results analysis/results/spectra-interval2.json
python -m analysis.unet_cost
python -m analysis.app_screenshot
python -m analysis.score_spectra
python -m analysis.app_bench
# every sweep of docs/results.md (peers, frdiff on DPM-Solver++, forecast and guidance reuse),
# each the command its JSON records; rows measured with the glyph-unet DDIM-50 policies shipped
# before their re-tune read them from analysis/results/reuse-policies/
python -m frdiff sweep --model glyph-dit --steps 50 --scheduler ddim --fewer-steps 25 --batch 4 --policies frdiff/glyphs/assets/policies/glyph-dit-ddim50-1.5x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-1.5x.json+forecast,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json+forecast,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.5x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.5x.json+forecast,magnitude:0.24,magnitude:0.24+forecast,uniform:3:residual,uniform:3:residual+forecast,uniform:3:residual+forecast:logsnr --out analysis/results/sweep-forecast-glyph-dit-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --fewer-steps 25 --batch 4 --policies analysis/results/reuse-policies/glyph-unet-ddim50-1.5x.json,analysis/results/reuse-policies/glyph-unet-ddim50-1.5x.json+forecast,analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json,analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json+forecast,analysis/results/reuse-policies/glyph-unet-ddim50-2.5x.json,analysis/results/reuse-policies/glyph-unet-ddim50-2.5x.json+forecast,uniform:2,uniform:2+forecast,uniform:3,uniform:3+forecast,uniform:3+forecast:logsnr,deep:3,deep:3+forecast --out analysis/results/sweep-forecast-glyph-unet-ddim50.json
python -m frdiff sweep --model glyph-dit --steps 50 --scheduler ddim --batch 4 --fewer-steps 17 --policies dpmsolver@20:frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-1.5x.json,dpmsolver@20:frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-2.0x.json,dpmsolver@20:frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-2.5x.json,dpmsolver@33:uniform:2:residual,dpmsolver@25:uniform:2:residual --out analysis/results/sweep-frdiff-on-dpm-glyph-dit-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --batch 4 --fewer-steps 17 --policies dpmsolver@20:frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-1.5x.json,dpmsolver@20:frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-2.0x.json,dpmsolver@20:frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-2.5x.json,dpmsolver@33:uniform:2,dpmsolver@25:uniform:2 --out analysis/results/sweep-frdiff-on-dpm-glyph-unet-ddim50.json
python -m frdiff sweep --model glyph-dit --steps 50 --scheduler ddim --fewer-steps 33,25 --batch 4 --policies frdiff/glyphs/assets/policies/glyph-dit-ddim50-1.5x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-1.5x.json+cfg:3,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json+cfg:3,uniform:1+cfg:2,uniform:1+cfg:3,uniform:1+cfg:2:25,magnitude:0.24,magnitude:0.24+cfg:3 --out analysis/results/sweep-guidance-glyph-dit-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --fewer-steps 33,25,20 --batch 4 --policies analysis/results/reuse-policies/glyph-unet-ddim50-1.5x.json,analysis/results/retuned/glyph-unet-ddim50-1.5x.json,analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json,analysis/results/retuned/glyph-unet-ddim50-2.0x.json,analysis/results/reuse-policies/glyph-unet-ddim50-2.5x.json,analysis/results/retuned/glyph-unet-ddim50-2.5x.json,uniform:1+cfg:2,uniform:1+cfg:3,uniform:1+cfg:2:25,analysis/results/reuse-policies/glyph-unet-ddim50-1.5x.json+cfg:2,analysis/results/reuse-policies/glyph-unet-ddim50-2.0x.json+cfg:3 --out analysis/results/sweep-guidance-glyph-unet-ddim50.json
python -m frdiff sweep --model glyph-dit --steps 50 --scheduler ddim --peers all --fewer-steps 25 --batch 4 --policies frdiff/glyphs/assets/policies/glyph-dit-ddim50-1.5x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json,frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.5x.json,magnitude:0.12,magnitude:0.24,magnitude:0.4,uniform:3:residual --out analysis/results/sweep-peers-glyph-dit-ddim50.json
python -m frdiff sweep --model glyph-dit --steps 20 --scheduler dpmsolver --peers all --batch 4 --policies frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-1.5x.json,frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-2.0x.json,frdiff/glyphs/assets/policies/glyph-dit-dpmsolver20-2.5x.json,analysis/results/policies-dit-dpm-before-magnitude/glyph-dit-dpmsolver20-1.5x.json,analysis/results/policies-dit-dpm-before-magnitude/glyph-dit-dpmsolver20-2.0x.json,analysis/results/policies-dit-dpm-before-magnitude/glyph-dit-dpmsolver20-2.5x.json,magnitude:0.12,magnitude:0.24,magnitude:0.4,uniform:3:residual --out analysis/results/sweep-peers-glyph-dit-dpm20.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --peers all --batch 4 --fewer-steps 25 --policies frdiff/glyphs/assets/policies/glyph-unet-ddim50-1.5x.json,frdiff/glyphs/assets/policies/glyph-unet-ddim50-2.0x.json,frdiff/glyphs/assets/policies/glyph-unet-ddim50-2.5x.json,magnitude:0.12:F,magnitude:0.24:F,uniform:3,deep:3 --out analysis/results/sweep-peers-glyph-unet-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 20 --scheduler dpmsolver --peers all --batch 4 --policies frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-1.5x.json,frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-2.0x.json,frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-2.5x.json,magnitude:0.12:F,magnitude:0.24:F,uniform:3,deep:3 --out analysis/results/sweep-peers-glyph-unet-dpm20.json
for m in glyph-unet glyph-dit; do  # faster rows on DPM-Solver++ 20
  python -m frdiff tune --model $m --steps 20 --scheduler dpmsolver --target-speedup 3.0 --per-block \
    --out analysis/results/policy-$m-dpmsolver20-3.0x.json
  python -m frdiff sweep --model $m --steps 20 --scheduler dpmsolver --batch 4 --fewer-steps 7,6 \
    --policies assets/policies/$m-dpmsolver20-2.5x.json,analysis/results/policy-$m-dpmsolver20-3.0x.json,uniform:3:none,uniform:4:none \
    --out analysis/results/sweep-fast-$m-dpm20.json
done
# rows for the verdict table read at the budget (docs/results.md "Rows for the budgets"): learned
# policies a little faster than the shipped ones, and frdiff on DPM-Solver++ 25 against DDIM 50
python -m frdiff tune --model glyph-dit --steps 50 --target-speedup 2.15 --per-block \
  --out analysis/results/policy-glyph-dit-ddim50-2.15x.json
python -m frdiff tune --model glyph-unet --steps 50 --target-speedup 1.7 --per-block \
  --out analysis/results/policy-glyph-unet-ddim50-1.7x.json
python -m frdiff tune --model glyph-unet --steps 25 --scheduler dpmsolver --target-speedup 1.4 --per-block \
  --out analysis/results/policy-glyph-unet-dpmsolver25-1.4x.json
python -m frdiff tune --model glyph-unet --steps 20 --scheduler dpmsolver --target-speedup 2.3 --per-block \
  --out analysis/results/policy-glyph-unet-dpmsolver20-2.3x.json
python -m frdiff sweep --model glyph-dit --steps 50 --scheduler ddim --batch 4 --fewer-steps 25 --peers magcache \
  --policies frdiff/glyphs/assets/policies/glyph-dit-ddim50-2.0x.json,analysis/results/policy-glyph-dit-ddim50-2.15x.json \
  --out analysis/results/sweep-budget-glyph-dit-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --batch 4 --fewer-steps 20 --peers dpmsolver \
  --policies frdiff/glyphs/assets/policies/glyph-unet-ddim50-2.5x.json,dpmsolver@25:analysis/results/policy-glyph-unet-dpmsolver25-1.4x.json \
  --out analysis/results/sweep-budget-glyph-unet-ddim50.json
python -m frdiff sweep --model glyph-unet --steps 20 --scheduler dpmsolver --batch 4 --fewer-steps 10,8 \
  --policies frdiff/glyphs/assets/policies/glyph-unet-dpmsolver20-2.0x.json,analysis/results/policy-glyph-unet-dpmsolver20-2.3x.json \
  --out analysis/results/sweep-budget-glyph-unet-dpm20.json
python -m frdiff sweep --model glyph-unet --steps 20 --scheduler dpmsolver --batch 4 --fewer-steps 10 \
  --policies uniform:2:none,uniform:2 --out analysis/results/sweep-nocall-glyph-unet-dpm20.json
python -m frdiff sweep --model glyph-unet --steps 50 --scheduler ddim --batch 4 --fewer-steps 33 --peers dpmsolver \
  --policies frdiff/glyphs/assets/policies/glyph-unet-ddim50-1.5x.json,analysis/results/policy-glyph-unet-ddim50-1.7x.json \
  --out analysis/results/sweep-budget15-glyph-unet-ddim50.json
# class accuracy and FD of every verdict cell's row, on 1024 fresh images
python -m analysis.verdict_quality --samples 1024
# the tables of README.md and docs/results.md, re-rendered from the result files above
python -m analysis.results_doc
