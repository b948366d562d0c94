"""Plotly figures for the app: a policy's grid, per-block temporal change, error spectra."""

from __future__ import annotations

import plotly.graph_objects as go

from frdiff import KeyframePolicy, ScoreMixing

# (value, colour, meaning) of a policy cell, from "no network call" to "compute"
CELLS = [(0, "#ffffff", "no call (N, or lam = 0): keyframe prediction reused"),
         (1, "#bbbbbb", "S: skip block (whole output reused)"),
         (2, "#8ecae6", "R: residual reuse (current input + cached residual)"),
         (3, "#f4a261", "F: feature reuse"),
         (4, "#1d3557", "K: keyframe (compute)")]
VALUE = {"S": 1, "R": 2, "F": 3, "K": 4}


def short_name(name: str) -> str:
    """A block's name as the plots and the grid label it: down.0, mid_block, block.3."""
    return name.replace("_blocks", "").replace("transformer", "block")


def policy_figure(policy: KeyframePolicy, mixing: ScoreMixing, blocks: list[str]) -> go.Figure:
    """Blocks x steps grid of what runs where; white where no network call is made (N steps,
    and reuse steps where score mixing has lam = 0)."""
    names = list(policy.blocks or blocks)
    z, text = [], []
    for b, name in enumerate(names):
        row, hover = [], []
        for s in range(policy.num_steps):
            value = 0 if not policy.makes_call(s, mixing) else VALUE[policy.mode(s, b)]
            row.append(value)
            lam = "" if policy.is_keyframe(s) else f", lam = {policy.reuse_weight(s, mixing):.2f}"
            hover.append(f"step {s}, {name}: {CELLS[value][2]}{lam}")
        z.append(row)
        text.append(hover)
    scale = []
    n = len(CELLS)
    for value, colour, _ in CELLS:  # discrete colours: each value owns 1/n of [0, 1]
        scale += [[value / n, colour], [(value + 1) / n, colour]]
    fig = go.Figure(go.Heatmap(z=z, y=[short_name(n) for n in names], zmin=-0.5, zmax=n - 0.5,
                               colorscale=scale, showscale=False, text=text, hoverinfo="text",
                               xgap=1, ygap=1))
    for _, colour, meaning in CELLS:  # a legend for the discrete colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=meaning,
                                 marker=dict(size=10, color=colour, symbol="square",
                                             line=dict(width=1, color="#888"))))
    fig.update_layout(height=120 + 22 * len(names), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="step (0 = noisiest)", yaxis_autorange="reversed",
                      legend=dict(orientation="h", y=-0.35), plot_bgcolor="white",
                      title=dict(text=f"policy: {len(policy.keyframes)} keyframe steps of "
                                      f"{policy.num_steps}", font=dict(size=13)))
    return fig


def _mark_keyframes(fig: go.Figure, keyframes: list[int] | None, axis: str = "x") -> None:
    """Thin lines at the policy's keyframe steps (on the x axis, or both for a matrix)."""
    for k in keyframes or []:
        fig.add_vline(x=k, line=dict(color="#2a9d8f", width=1, dash="dot"), opacity=0.7)
        if axis == "xy":
            fig.add_hline(y=k, line=dict(color="#2a9d8f", width=1, dash="dot"), opacity=0.7)


def similarity_figure(blocks: list[str], change, title: str, keyframes: list[int] | None = None,
                      palette: str = "Viridis") -> go.Figure:
    """Heatmap of each block's relative change from the previous step (steps x blocks tensor)."""
    z = change.T.tolist()
    steps = list(range(1, change.shape[0] + 1))
    fig = go.Figure(go.Heatmap(z=z, x=steps, y=[short_name(b) for b in blocks], colorscale=palette,
                               colorbar=dict(title="change", tickformat=".0%"),
                               hovertemplate="step %{x}, %{y}: %{z:.1%} change<extra></extra>"))
    fig.update_layout(height=140 + 24 * len(blocks), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="step (0 = noisiest)", range=[0.5, len(steps) + 0.5]),
                      yaxis_autorange="reversed", title=dict(text=title, font=dict(size=13)))
    _mark_keyframes(fig, keyframes)
    return fig


def pairwise_figure(values, block: str, keyframes: list[int] | None = None, palette: str = "Viridis") -> go.Figure:
    """Step x step relative distance of one block's output; keyframes as dotted lines. Square,
    each axis exactly the step range (the panel's spare width is left blank, not filled with
    axis beyond the steps)."""
    n = len(values)
    steps = list(range(n))
    fig = go.Figure(go.Heatmap(z=values, x=steps, y=steps, colorscale=palette,
                               colorbar=dict(title="distance", tickformat=".0%"),
                               hovertemplate="step %{y} vs step %{x}: %{z:.1%}<extra></extra>"))
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white",
                      xaxis=dict(title="step", range=[-0.5, n - 0.5], constrain="domain"),
                      yaxis=dict(title="step", range=[n - 0.5, -0.5], scaleanchor="x", scaleratio=1,
                                 constrain="domain"),
                      title=dict(text=f"{short_name(block)}: distance between its outputs at any two steps "
                                      "(dotted: the policy's keyframes)", font=dict(size=13)))
    _mark_keyframes(fig, keyframes, "xy")
    return fig


KIND_COLOURS = {"keyframe": "#1d3557", "reuse": "#f4a261", "no call": "#bbbbbb"}


def lam_figure(lam: list[float], kinds: list[str]) -> go.Figure:
    """lam(r) for the current slope and bias, with each step's kind under the policy."""
    n = len(lam)
    fig = go.Figure(go.Scatter(x=list(range(n)), y=lam, mode="lines", name="lam(r): weight of FR",
                               line=dict(color="#444")))
    for kind, colour in KIND_COLOURS.items():
        steps = [i for i, k in enumerate(kinds) if k == kind]
        fig.add_trace(go.Scatter(x=steps, y=[lam[i] if kind == "reuse" else (1.0 if kind == "keyframe" else 0.0)
                                             for i in steps], mode="markers", name=kind,
                                 marker=dict(color=colour, size=7, line=dict(width=1, color="#555"))))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step (0 = noisiest)",
                      yaxis=dict(title="lam", range=[-0.05, 1.05]), legend=dict(orientation="h", y=-0.35),
                      title=dict(text="score mixing: eps = lam eps_FR + (1 - lam) eps_key", font=dict(size=13)))
    return fig


def score_spectra_figure(bands: list[int], mean: dict | None, space: str) -> go.Figure:
    """Mean error spectra of eps_key, eps_FR and the mix over the steps where 0 < lam < 1."""
    names = {"eps_key": "keyframe's prediction (reduced NFE)", "eps_fr": "feature reuse (FR)",
             "mixed": "score mixing (what the sampler used)"}
    spectra = {names[k]: v for k, v in (mean or {}).items() if k in names}
    what = "eps" if space == "eps" else "x0"
    fig = spectrum_figure(bands, spectra, f"mixed {what} predictions vs full compute at the same input "
                                          "(mean over steps with 0 < lam < 1)")
    fig.update_layout(xaxis_title="spatial frequency (cycles per image)")
    if not spectra:  # say why the axes are empty instead of showing blank ones
        fig.add_annotation(text="no reuse step of this run mixes (0 < lam < 1): every one is lam = 0 or 1;<br>"
                                "more steps, a smaller slope k or another bias b give mixed steps",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=13))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def identical_on_top(*series: list[float]) -> tuple[list[list[float]], float, float]:
    """PSNR series with identical points (100 dB) moved to a line just above the highest finite
    one: (the series as drawn, that line, the lowest finite point)."""
    finite = [v for values in series for v in values if v < 100.0] or [0.0]
    top = max(finite) + 4.0
    return [[v if v < 100.0 else top for v in values] for values in series], top, min(finite)


def distance_figure(psnr: list[float], kinds: list[str], step: int) -> go.Figure:
    """PSNR of FRDiff's predicted x0 vs full compute's at every step; the scrubbed step marked.
    Identical steps (100 dB: the early keyframes) sit on a line just above the highest finite
    point, labelled "identical", so the y range covers every point without squashing the rest."""
    (shown,), top, _ = identical_on_top(psnr)
    hover = [f"step {i}: " + (f"{v:.1f} dB" if v < 100.0 else "identical to full compute")
             for i, v in enumerate(psnr)]
    fig = go.Figure(go.Scatter(x=list(range(len(psnr))), y=shown, mode="lines", line=dict(color="#888"),
                               showlegend=False, hoverinfo="skip"))
    for kind, colour in KIND_COLOURS.items():
        steps = [i for i, k in enumerate(kinds) if k == kind]
        fig.add_trace(go.Scatter(x=steps, y=[shown[i] for i in steps], mode="markers", name=kind,
                                 text=[hover[i] for i in steps], hoverinfo="text",
                                 marker=dict(color=colour, size=7)))
    if any(v >= 100.0 for v in psnr):
        fig.add_hline(y=top, line=dict(color="#bbb", width=1, dash="dot"), annotation_text="identical",
                      annotation_position="top left")
    fig.add_vline(x=step, line=dict(color="#e63946", width=2))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="step", range=[-0.5, len(psnr) - 0.5]),
                      yaxis=dict(title="x0 PSNR (dB)", range=[min(shown) - 3, top + 3]),
                      legend=dict(orientation="h", y=-0.4),
                      title=dict(text="predicted x0, FRDiff vs full compute", font=dict(size=13)))
    return fig


def spectrum_figure(bands: list[int], spectra: dict[str, list[float]], title: str) -> go.Figure:
    """Relative error power per radial frequency band, one line per run, log scale."""
    fig = go.Figure()
    for name, values in spectra.items():
        fig.add_trace(go.Scatter(x=bands, y=[max(v, 1e-12) for v in values], mode="lines+markers",
                                 name=name))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), yaxis_type="log",
                      xaxis_title="spatial frequency (cycles per image)",
                      yaxis_title="error power / full-compute power",
                      legend=dict(orientation="h", y=-0.3), title=dict(text=title, font=dict(size=13)))
    return fig
