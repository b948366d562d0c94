"""A/B: two policies side by side on the same noise, against full compute and each other.

Each policy is a name (`uniform:3`, `tuned:2.0`, ...) or a text grid, the editor's or a learned
one pasted in. One request runs full compute, A and B for their images and times, then records
the three trajectories (predicted x0 at every step) to show where A and B part ways.
"""

from __future__ import annotations

from frdiff.analysis import trajectory
from frdiff.metrics import psnr

from . import inputs
from .compare import difference, policy_summary, score
from .plots import identical_on_top
from .methods import FULL, run_plain, run_policy
from .runs import Run
from .models import POOL
from .trajectory import decode

A, B = "Policy A", "Policy B"


def compare_two(model, glyphs, scheduler, steps, policy_a, policy_b, mixing_on, slope, bias, seed) -> dict:
    """Full compute, A and B from the same noise: their runs, numbers rows, the |A - B| image
    and the per-step x0 PSNR of A and B to full compute and of A to B."""
    s = inputs.run_settings(model, glyphs, scheduler, steps, policy_a, mixing_on, slope, bias, seed)
    try:
        policy_b = inputs.policy_of(s.model, s.steps, policy_b, s.scheduler)
    except ValueError as err:
        raise ValueError(f"policy B: {err}") from None
    with POOL.borrow(s.model, s.scheduler) as pipe:
        full = run_plain(pipe, FULL, s.steps, s.steps, s.glyphs, s.seed, "the reference")
        a = run_policy(pipe, A, s.policy, s.mixing, s.glyphs, s.seed, policy_summary(s.policy))
        b = run_policy(pipe, B, policy_b, s.mixing, s.glyphs, s.seed, policy_summary(policy_b))
        paths = [trajectory(pipe, s.steps, policy=p, mixing=s.mixing, seed=s.seed, decode=decode,
                            class_labels=s.glyphs) if p is not None else
                 trajectory(pipe, s.steps, seed=s.seed, decode=decode, class_labels=s.glyphs)
                 for p in (None, s.policy, policy_b)]
    rows = score([full, a, b], s.model, "".join(s.glyphs))
    x0_full, x0_a, x0_b = (t.x0 for t in paths)
    return {"runs": [full, a, b], "rows": rows, "glyphs": s.glyphs, "steps": s.steps,
            "a_vs_b": Run("|A - B|", difference(a.images, b.images), 0.0, 0, 0.0),
            "per_step": {"A vs full compute": [psnr(x, y) for x, y in zip(x0_a, x0_full)],
                         "B vs full compute": [psnr(x, y) for x, y in zip(x0_b, x0_full)],
                         "A vs B": [psnr(x, y) for x, y in zip(x0_a, x0_b)]},
            "kinds": {"A": paths[1].kinds, "B": paths[2].kinds}}


def summary(d: dict) -> str:
    full, a, b = d["rows"]
    faster = A if a["counted_speedup"] > b["counted_speedup"] else B
    closer = A if a["psnr"] > b["psnr"] else B
    def line(r):
        return (f"**{r['method']}**: {r['counted_speedup']:.2f}x counted, {r['measured_speedup']:.2f}x measured "
                f"({r['network_calls']} calls), PSNR **{r['psnr']:.1f} dB**, SSIM {r['ssim']:.3f}, class "
                f"agreement {r['class_agreement']}/{r['glyphs']}")
    worst = min(range(d["steps"]), key=lambda i: d["per_step"]["A vs B"][i])
    return "\n\n".join([line(a), line(b),
                        f"{faster} computes less; {closer} stays closer to full compute. A and B differ most at "
                        f"step {worst} (x0 PSNR {d['per_step']['A vs B'][worst]:.1f} dB between them). "
                        "Times are one run each on this shared server: the counted speedup is exact."])


def numbers(d: dict) -> dict:
    return {"runs": d["rows"], "per_step": d["per_step"], "kinds": d["kinds"]}


def per_step_figure(d: dict):
    """x0 PSNR per step: A and B against full compute, and A against B."""
    import plotly.graph_objects as go

    colours = {"A vs full compute": "#0072b2", "B vs full compute": "#e69f00", "A vs B": "#444444"}
    fig = go.Figure()
    drawn, top, low = identical_on_top(*d["per_step"].values())
    for name, values in zip(d["per_step"], drawn):
        fig.add_trace(go.Scatter(x=list(range(len(values))), y=values,
                                 mode="lines+markers", name=name, line=dict(color=colours[name],
                                 dash="dot" if name == "A vs B" else "solid"), marker=dict(size=5)))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="step", range=[-0.5, d["steps"] - 0.5]),
                      yaxis=dict(title="x0 PSNR (dB); top line: identical", range=[low - 3, top + 3]),
                      legend=dict(orientation="h", y=-0.35),
                      title=dict(text="where the two policies part ways: predicted x0 at every step",
                                 font=dict(size=13)))
    return fig

