"""Links that restore a view: `?tab=trajectory&model=glyph-dit&policy=uniform:3&seed=5`.

The query parameters name the tab, the model, the sampler, the steps, the glyphs, the seed,
score mixing (`on`/`off`, and `slope`, `bias`) and the policy (a name such as `uniform:3` or
`tuned:2.0`, or the editor's text grid). Each is checked the way the app checks typed input;
one that is not valid falls back to its default and the page says which parameter it was,
never echoing what it held. Unknown parameters are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from . import inputs
from .models import model_defaults
from .specs import is_spec, spec_in, spec_text

TABS = ("compare", "ab", "redundancy", "frequency", "learn", "trajectory", "hub")  # in the page's order
RUNS = ("compare", "ab", "redundancy", "frequency", "trajectory")  # a link to these runs them
KNOWN = ("tab", "model", "sampler", "steps", "glyphs", "seed", "mixing", "slope", "bias", "policy")


def from_link(request) -> bool:
    """Was this page opened by a link (does its URL name any of the view's parameters)?"""
    return request is not None and any(k in request.query_params for k in KNOWN)
DEFAULT_POLICY = "uniform:2"
MAX_VALUE = 4 * inputs.LIMITS.text  # a longer parameter is refused before it is parsed


@dataclass
class View:
    """What a link restores (every field checked), and what was wrong with it."""

    tab: str = "compare"
    model: str = "glyph-unet"
    sampler: str = "DDIM"
    steps: int = 50
    glyphs: str = "A7K3"
    seed: int = 0
    mixing: bool = True
    slope: float = 30.0
    bias: float = 0.5
    policy: str = ""  # the editor's text
    notices: list[str] = field(default_factory=list)
    given: bool = False  # did the link name anything?

    @property
    def runs(self) -> bool:
        """Does opening this view run its tab (Learn and Hub wait for their buttons)?"""
        return self.tab in RUNS


def _number(text: str, what: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite")
    return value


def parse(params) -> View:
    """A View from query parameters (a mapping of names to strings)."""
    params = {k: params[k] for k in KNOWN if k in params}
    view = View(given=bool(params))
    bad = []

    def take(name, check):
        if name not in params:
            return
        value = params[name]
        try:
            if not isinstance(value, str) or len(value) > MAX_VALUE:
                raise ValueError("too long")
            check(value)
        except (ValueError, TypeError, OverflowError, KeyError):
            bad.append(name)

    def tab(v):
        if v not in TABS:
            raise ValueError(v)
        view.tab = v

    def model(v):
        view.model = inputs.model_name(v)
        view.sampler, view.steps = model_defaults(view.model)

    take("tab", tab)
    take("model", model)
    take("sampler", lambda v: setattr(view, "sampler", inputs.sampler(v, view.model)))
    take("steps", lambda v: setattr(view, "steps", inputs.steps_of(int(v))))
    take("glyphs", lambda v: setattr(view, "glyphs", "".join(inputs.glyphs_of(view.model, v))))
    take("seed", lambda v: setattr(view, "seed", inputs.seed_of(int(v))))
    take("mixing", lambda v: setattr(view, "mixing", {"on": True, "off": False}[v]))
    take("slope", lambda v: setattr(view, "slope", inputs.whole_number(_number(v, "slope"), "slope", 1, 100)))
    take("bias", lambda v: setattr(view, "bias", _bias(_number(v, "bias"))))
    view.policy = spec_text(view.model, view.steps, DEFAULT_POLICY, view.sampler)
    if "policy" in params:
        try:
            text = params["policy"]
            if len(text) > inputs.LIMITS.text:
                raise ValueError("too long")
            inputs.policy_of(view.model, view.steps, text, view.sampler)  # checked as typed text is
            view.policy = spec_text(view.model, view.steps, text, view.sampler) if is_spec(text) else text
        except (ValueError, TypeError):  # its message may quote the text: not shown
            bad.append("policy")
            view.notices.append(f"the link's policy is not a valid policy for {view.model} at {view.steps} steps "
                                f"(paste it into the editor to see why)")
    for name in bad:
        if name != "policy":
            view.notices.append(f"the link's `{name}` was not valid")
    if bad:
        view.notices.append("the defaults are shown for those")
    return view


def _bias(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("bias")
    return value


def notice(view: View) -> str:
    """The page's line about a link that was not taken whole (empty when it was)."""
    return ("**This link was only partly restored:** " + "; ".join(view.notices) + ".") if view.notices else ""


def query(tab: str, model: str, sampler: str, steps, glyphs: str, seed, mixing: bool, slope, bias,
          editor: str) -> str:
    """The query string that restores this view (the policy by its name where it was made from one)."""
    spec = editor.strip() if is_spec(editor) else spec_in(editor)
    policy = spec or "\n".join(line for line in editor.splitlines() if line.strip() and not line.startswith("#"))
    params = {"tab": tab if tab in TABS else "compare", "model": model, "sampler": sampler, "steps": int(steps),
              "glyphs": glyphs, "seed": int(seed), "mixing": "on" if mixing else "off", "slope": slope,
              "bias": bias, "policy": policy}
    return "?" + urlencode(params)
