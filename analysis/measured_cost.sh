#!/usr/bin/env bash
# Each glyph model: a 2.0x policy tuned to measured seconds beside one tuned to counted MACs,
# each benched against full compute in one process (issue 26; about 6 min a model on 2 cores).
#   bash analysis/measured_cost.sh [glyph-unet glyph-dit glyph-flux]
# Writes analysis/results/measured-cost/: M-costs.json (the profile), M-2.0x-{measured,counted}.json
# (the policies) and M-bench-{measured,counted}.json (each bench's JSON, its machine included).
set -e
out=analysis/results/measured-cost
mkdir -p "$out"
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(glyph-unet glyph-dit glyph-flux)
for m in "${models[@]}"; do
  python -m frdiff profile --model "$m" --batch 8 --out "$out/$m-costs.json" --json > /dev/null
  python -m frdiff tune --model "$m" --target-speedup 2.0 --iterations 20 --cost measured \
    --cost-table "$out/$m-costs.json" --out "$out/$m-2.0x-measured.json" --json > /dev/null
  python -m frdiff tune --model "$m" --target-speedup 2.0 --iterations 20 --out "$out/$m-2.0x-counted.json" --json > /dev/null
  for kind in measured counted; do
    python -m frdiff bench --model "$m" --batch 8 --policy "$out/$m-2.0x-$kind.json" --json > "$out/$m-bench-$kind.json"
  done
done
