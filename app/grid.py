"""The policy grid you paint: a steps x blocks `gr.HTML` grid with its own JavaScript.

A click cycles a cell through K, F, S (and R on residual blocks); a drag paints the mode the
first cell got; a click on a step header toggles the whole step between keyframe and no call
(N); a click on a block label paints its row (every step but 0) with the brush. The top row,
"uncond", is classifier-free guidance's unconditional half: a click toggles a step between
computing it (K) and reusing its guidance difference (R, the call runs on half the batch).
Undo keeps the last 50 edits. At a step where score mixing has lam = 0 the network is not called
whatever the modes: its cells keep their modes' colours, faded and hatched, so an edit there
still shows (and applies where lam > 0: mixing off, or another schedule). The counted
speedup is computed in the browser, at every edit, from the per-block costs the server sends
once per model (the formula of `frdiff.cost.CallCosts`); hovering a cell shows that block's
temporal change at that step once the Temporal redundancy tab has measured it.

The grid and the text editor stay in sync: a user edit in the grid (the `input` event)
rewrites the text; any change of the text (typing, a preset, an import) redraws the grid.
The server only converts and checks: all state lives in the component's value.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import torch

from frdiff import KeyframePolicy, Mode
from frdiff.cost import CallCosts, MacCounter
from frdiff.targets import find_blocks

from . import inputs
from .models import POOL, policy_blocks
from .plots import short_name

_COSTING = threading.Lock()  # one counted call on a spare replica at a time


@lru_cache(maxsize=None)
def block_costs(model: str) -> dict:
    """MACs of one model call, per block and what FR saves: a one-step run on the pool's spare
    replica (never lent to a request, so drawing the grid never waits behind a generation, and
    never copies or runs a model another request is patching)."""
    model = inputs.model_name(model)
    pipe = POOL.spare(model)
    with _COSTING, MacCounter(pipe.denoiser) as counter, torch.no_grad():
        pipe(["A"], num_inference_steps=1, generator=torch.Generator().manual_seed(0), output_type="pt")
    costs = CallCosts.count(counter, find_blocks(pipe.denoiser))  # the replica's own modules
    return {"total": costs.total, "block": costs.block, "fr_saving": costs.fr_saving}


def grid_value(model: str, steps, text: str, mixing: bool, slope: float, bias: float,
               change=None) -> dict:
    """The grid's value for the editor's text (an invalid text keeps the grid empty, with the
    reason: the text editor says what is wrong)."""
    blocks = policy_blocks(inputs.model_name(model))
    value = {"blocks": [b.name for b in blocks], "short": [short_name(b.name) for b in blocks],
             "residual": [b.residual for b in blocks], "rows": [], "lam": [], "error": "",
             "uncond": "", "forecast": None, "costs": block_costs(model), "change": change}
    try:
        steps = inputs.steps_of(steps)
        policy = inputs.policy_of(model, steps, text)
        mix = inputs.mixing_of(mixing, slope, bias)
    except (ValueError, TypeError) as err:
        return value | {"error": str(err)}
    width = len(blocks)
    value["rows"] = ["".join(policy.mode(s, b) for b in range(width)) for s in range(steps)]
    value["lam"] = [1.0 if policy.is_keyframe(s) else policy.reuse_weight(s, mix) for s in range(steps)]
    value["uncond"], value["forecast"] = policy.uncond or Mode.KEYFRAME * steps, policy.forecast
    return value


def text_of(value) -> str:
    """The text grid of an edited grid value (checked: the rows must form a valid policy; its
    forecast and uncond lines are kept)."""
    if not isinstance(value, dict) or not isinstance(value.get("rows"), list) or not value["rows"]:
        raise ValueError("the grid holds no policy")
    names = value.get("blocks")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("the grid's block names are missing")
    policy = KeyframePolicy(tuple(value["rows"]), tuple(names), value.get("forecast"),
                            value.get("uncond") or None)
    return policy.to_text()


def change_matrix(similarity: dict | None):
    """Per step and block, the relative change from the redundancy measurement (or None)."""
    if not similarity or "change" not in similarity:
        return None
    return [[None if v is None or v != v else round(float(v), 4) for v in row] for row in similarity["change"]]


CSS = """
.frgrid { font-family: ui-monospace, monospace; font-size: 11px; user-select: none; overflow-x: auto; }
.frgrid .bar { display: flex; gap: 6px; align-items: center; margin-bottom: 6px; flex-wrap: wrap; }
.frgrid .bar button { border: 1px solid #999; border-radius: 4px; padding: 1px 8px; cursor: pointer;
  background: #fff; color: #111; }
.frgrid .bar button.on { outline: 2px solid #e76f51; }
.frgrid .speed { font-weight: 600; font-size: 13px; margin-left: 8px; }
.frgrid .err { color: #b00020; }
.frgrid table { border-collapse: separate; border-spacing: 1px; width: auto; margin: 0; }
.frgrid th { font-weight: 400; color: #555; padding: 0 3px; cursor: pointer; white-space: nowrap; }

.frgrid td, .frgrid th { padding: 0 !important; border: none !important; line-height: 14px; }
.frgrid th { padding: 0 4px !important; }
.frgrid th.step { width: 12px; max-width: 12px; font-size: 9px; padding: 0 !important; overflow: visible;
  text-align: left; }
.frgrid td { width: 12px; min-width: 12px; max-width: 12px; height: 16px; cursor: pointer; border-radius: 2px; }
.frgrid td.K { background: #1d3557; }
.frgrid td.F { background: #f4a261; }
.frgrid td.R { background: #8ecae6; }
.frgrid td.S { background: #bbbbbb; }
.frgrid td.N, .frgrid td.nocall { background: #ffffff; box-shadow: inset 0 0 0 1px #ccc; }
.frgrid td.lam0 { opacity: 0.35; box-shadow: inset 0 0 0 1px #888;
  background-image: repeating-linear-gradient(45deg, transparent 0 2px, rgba(255,255,255,.7) 2px 4px); }
.frgrid td.U { background: #9d4edd; }
.frgrid tr.uncond th, .frgrid tr.uncond td { border-bottom: 3px solid #fff !important; }
.frgrid td.locked { cursor: not-allowed; }
"""

JS = r"""
const root = () => element.querySelector('.frgrid');
const NAMES = {K: 'keyframe (compute)', F: 'feature reuse', S: 'skip block', R: 'residual reuse',
               N: 'no call'};
let brush = 'F';
let undo = [];
let drag = null;  // {mode, cells: Map "s,b" -> mode}

function current() { return props.value || {}; }
function rowsCopy(v) { return (v.rows || []).slice(); }
function setCell(rows, s, b, mode) { rows[s] = rows[s].slice(0, b) + mode + rows[s].slice(b + 1); }
function isKey(row) { return /^K+$/.test(row); }
function isNone(row) { return /^N+$/.test(row); }

function speedup(v, rows) {
  const c = v.costs; if (!c || !rows.length) return null;
  const fixed = c.total - c.block.reduce((a, x) => a + x, 0);
  let spent = 0;
  rows.forEach((row, s) => {
    const lam = s === 0 || isKey(row) ? 1 : (isNone(row) ? 0 : v.lam[s]);
    if (!isKey(row) && lam === 0) return;  // no network call
    let cost = fixed;
    for (let b = 0; b < row.length; b++) {
      const m = row[b];
      cost += m === 'K' ? c.block[b] : (m === 'S' || m === 'R' ? 0 : c.block[b] - c.fr_saving[b]);
    }
    spent += (v.uncond && v.uncond[s] === 'R' ? 0.5 : 1) * cost;  // uncond R: half the batch
  });
  return spent > 0 ? rows.length * c.total / spent : null;
}

function cycle(v, b, mode) {
  const order = v.residual && v.residual[b] ? ['K', 'F', 'S', 'R'] : ['K', 'F', 'S'];
  const i = order.indexOf(mode);
  return order[(i + 1) % order.length];
}

let cursor = {s: 1, b: 0};  // the cell the keyboard edits
let refocus = false;  // give the cursor cell the focus after the next draw
// the last edit, until the server's redraw of it lands. The page's cheap events run in
// parallel: a redraw the server started before the edit (from the text as it was: a
// measurement's hover data, a first view) can land after it and would undo it on screen.
let pending = null;  // {before: {rows, uncond}, after: {rows, uncond}, at}
const PENDING_MS = 5000;
function policyOf(v) { return {rows: v.rows || [], uncond: v.uncond || ''}; }
function samePolicy(a, b) { return JSON.stringify(a.rows) === JSON.stringify(b.rows) && a.uncond === b.uncond; }
function edit(next) {
  const v = current();
  pending = {before: policyOf(v), after: policyOf(next), at: Date.now()};
  props.value = next;
  draw();  // at once: 'watch' sees the server's values, and the server may answer with the same one
  trigger('input');
}
function commit(rows, uncond) {
  const v = current();
  undo.push({rows: v.rows, uncond: v.uncond}); if (undo.length > 50) undo.shift();
  edit(Object.assign({}, v, {rows: rows, uncond: uncond === undefined ? v.uncond : uncond}));
}
function fromServer() {
  const v = current();
  if (pending && Date.now() - pending.at < PENDING_MS) {
    if (samePolicy(policyOf(v), pending.before) && !samePolicy(pending.before, pending.after)) {
      // a redraw of the text from before the edit: keep the edit, take the rest (lam, costs, hover)
      props.value = Object.assign({}, v, {rows: pending.after.rows, uncond: pending.after.uncond});
      draw();
      return;
    }
  }
  pending = null;  // the edit's own redraw, or a new policy from elsewhere (typed, a preset, a link)
  draw();
}

function draw() {
  const el = root(); if (!el) return;
  const v = current();
  const rows = v.rows || [];
  const speed = speedup(v, rows);
  let html = '<div class="bar"><span>brush:</span>';
  for (const m of ['K', 'F', 'S', 'R', 'N']) {
    html += `<button data-brush="${m}" class="${m === brush ? 'on' : ''}" title="${NAMES[m]}">${m}</button>`;
  }
  html += `<button data-undo="1" title="undo the last edit">undo</button>`;
  html += `<span class="speed" data-speed="1">${speed ? 'counted speedup ' + speed.toFixed(2) + 'x' : ''}</span>`;
  html += v.error ? `<span class="err">${v.error.replace(/</g, '&lt;')}</span>` : '';
  html += '</div>';
  if (rows.length) {
    html += '<table role="grid" aria-label="keyframe policy: one row per block, one column per step; ' +
      'arrow keys move, Enter or Space cycles the mode, K F S R N set it"><tr><th></th>';
    rows.forEach((row, s) => {
      const label = s % 5 === 0 ? s : '';
      html += `<th class="step" data-step="${s}" title="step ${s}: click to toggle keyframe / no call">${label}</th>`;
    });
    html += '</tr>';
    const uncond = v.uncond || 'K'.repeat(rows.length);
    html += '<tr class="uncond"><th title="classifier-free guidance: the unconditional half ' +
      'computes (K) or reuses its guidance difference (R, half the batch runs); click a cell to ' +
      'toggle">uncond</th>';
    rows.forEach((row, s) => {
      const reused = uncond[s] === 'R';
      const tip = `step ${s}, unconditional CFG half: ` + (reused ?
        'reuses its guidance difference (the call runs on the conditional half)' : 'computes');
      html += `<td class="${reused ? 'U' : 'K'}${s === 0 ? ' locked' : ''}" data-u="${s}" title="${tip}"></td>`;
    });
    html += '</tr>';
    (v.short || v.blocks).forEach((name, b) => {
      html += `<tr><th data-block="${b}" title="${v.blocks[b]}: click to paint the row with the brush">${name}</th>`;
      rows.forEach((row, s) => {
        const m = row[b];
        // a lam = 0 step makes no call whatever its modes: they are drawn faded, hatched, so an
        // edit there still shows (it applies once the step makes a call: mixing off or changed)
        const lam0 = !isKey(row) && !isNone(row) && v.lam[s] === 0;
        const nocall = !isKey(row) && isNone(row);
        const change = v.change && v.change[s - 1] ? v.change[s - 1][b] : null;
        const what = nocall ? 'no call (N: keyframe prediction reused)' : lam0 ?
          `${NAMES[m]}, but no call at this step (lam = 0: score mixing reuses the keyframe ` +
          'prediction; the mode applies where lam > 0)' : NAMES[m];
        const tip = `step ${s}, ${v.blocks[b]}: ${what}` +
          (s > 0 && !isKey(row) ? `, lam ${v.lam[s].toFixed(2)}` : '') +
          (change !== null && change !== undefined ? `; temporal change ${(100 * change).toFixed(1)}%` : '');
        const cls = (nocall ? 'nocall' : m) + (lam0 ? ' lam0' : '') + (s === 0 ? ' locked' : '');
        const focus = s === cursor.s && b === cursor.b ? '0' : '-1';  // one tab stop: arrows move it
        html += `<td class="${cls}" data-s="${s}" data-b="${b}" title="${tip}" tabindex="${focus}" ` +
          `role="gridcell" aria-label="${tip}"></td>`;
      });
      html += '</tr>';
    });
    html += '</table>';
  }
  const focused = el.contains(document.activeElement) && document.activeElement.dataset.s !== undefined;
  el.innerHTML = html;
  if (focused || refocus) {
    refocus = false;
    el.querySelector(`td[data-s="${cursor.s}"][data-b="${cursor.b}"]`)?.focus();
  }
}

// the keyboard: arrows move the cursor cell, Enter / Space cycle its mode as a click does, a
// mode's letter sets it (N: the whole step makes no call)
element.addEventListener('keydown', (e) => {
  const t = e.target;
  if (t.dataset.s === undefined) return;
  const v = current(); const rows = v.rows || []; if (!rows.length) return;
  const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  if (moves[e.key]) {
    const [ds, db] = moves[e.key];
    cursor = {s: Math.min(Math.max(cursor.s + ds, 1), rows.length - 1),
              b: Math.min(Math.max(cursor.b + db, 0), rows[0].length - 1)};
    e.preventDefault(); refocus = true; draw(); return;
  }
  const s = +t.dataset.s, b = +t.dataset.b; if (s === 0) return;
  const letter = e.key.length === 1 ? e.key.toUpperCase() : '';
  let mode = null;
  if (e.key === 'Enter' || e.key === ' ') mode = isNone(rows[s]) ? 'K' : cycle(v, b, rows[s][b]);
  else if ('KFSRN'.includes(letter) && letter) mode = letter;
  if (!mode) return;
  e.preventDefault();
  if (mode === 'R' && !(v.residual && v.residual[b])) return;
  const next = rowsCopy(v);
  if (mode === 'N') next[s] = 'N'.repeat(next[s].length);
  else { if (isNone(next[s])) next[s] = 'K'.repeat(next[s].length); setCell(next, s, b, mode); }
  cursor = {s: s, b: b}; refocus = true;
  commit(next);
});

element.addEventListener('mousedown', (e) => {
  const t = e.target;
  const v = current();
  if (t.dataset.brush) { brush = t.dataset.brush; draw(); return; }
  if (t.dataset.undo) {
    if (undo.length) edit(Object.assign({}, v, undo.pop()));
    return;
  }
  if (t.dataset.u !== undefined) {
    const s = +t.dataset.u; if (s === 0) return;
    const u = (v.uncond || 'K'.repeat((v.rows || []).length)).split('');
    u[s] = u[s] === 'R' ? 'K' : 'R';
    commit(rowsCopy(v), u.join('')); return;
  }
  if (t.dataset.step !== undefined) {
    const s = +t.dataset.step; if (s === 0) return;
    const rows = rowsCopy(v); const w = rows[s].length;
    rows[s] = isKey(rows[s]) ? 'N'.repeat(w) : 'K'.repeat(w);
    commit(rows); return;
  }
  if (t.dataset.block !== undefined) {
    const b = +t.dataset.block; const rows = rowsCopy(v);
    if (brush === 'R' && !(v.residual && v.residual[b])) return;
    for (let s = 1; s < rows.length; s++) {
      if (brush === 'N') { rows[s] = 'N'.repeat(rows[s].length); continue; }
      if (isNone(rows[s])) rows[s] = 'K'.repeat(rows[s].length);
      setCell(rows, s, b, brush);
    }
    commit(rows); return;
  }
  if (t.dataset.s !== undefined) {
    const s = +t.dataset.s, b = +t.dataset.b; if (s === 0) return;
    const row = v.rows[s];
    const mode = isNone(row) ? 'K' : cycle(v, b, row[b]);
    drag = {mode: mode, cells: new Map([[`${s},${b}`, mode]])};
    t.className = mode;
    e.preventDefault();
  }
});
element.addEventListener('mouseover', (e) => {
  const t = e.target;
  if (!drag || t.dataset.s === undefined) return;
  const s = +t.dataset.s, b = +t.dataset.b; if (s === 0) return;
  const v = current();
  if (drag.mode === 'R' && !(v.residual && v.residual[b])) return;
  drag.cells.set(`${s},${b}`, drag.mode);
  t.className = drag.mode;
});
document.addEventListener('mouseup', () => {
  if (!drag) return;
  const rows = rowsCopy(current());
  for (const [key, mode] of drag.cells) {
    const [s, b] = key.split(',').map(Number);
    if (isNone(rows[s])) rows[s] = 'K'.repeat(rows[s].length);
    setCell(rows, s, b, mode);
  }
  drag = null;
  commit(rows);
});
watch('value', fromServer);
draw();
"""
