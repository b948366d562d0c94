#!/usr/bin/env bash
# glyph-flux: a 2.0x policy tuned to measured seconds vs to counted MACs, each benched (issue 26; about 6 min)
mkdir -p runs/measured
set -e
python -m frdiff profile --model glyph-flux --batch 8 --out runs/measured/flux-costs.json
python -m frdiff tune --model glyph-flux --target-speedup 2.0 --iterations 20 --cost measured --cost-table runs/measured/flux-costs.json --out runs/measured/flux-2.0x-measured.json --json
python -m frdiff tune --model glyph-flux --target-speedup 2.0 --iterations 20 --out runs/measured/flux-2.0x-counted.json --json
python -m frdiff bench --model glyph-flux --batch 8 --policy runs/measured/flux-2.0x-measured.json --json
python -m frdiff bench --model glyph-flux --batch 8 --policy runs/measured/flux-2.0x-counted.json --json
