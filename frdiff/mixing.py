"""Score mixing (FRDiff section 3): blend the reduced-NFE output with the FR output.

At a non-keyframe step with step ratio r = i / N:
    eps = lam(r) * eps_FR + (1 - lam(r)) * eps_key,   lam(r) = clip((k (r - b) + 2) / 4, 0, 1)
Where lam = 0 the network is not called and the keyframe prediction is reused.

"Reuse the keyframe prediction" means hold eps (and x0) fixed, whatever the model predicts:
for an eps-prediction model the output is eps_key itself (the paper, exactly); a v-prediction
model gets v = alpha_t eps_key - sigma_t x0_key, which is what DDIM would see on the same
trajectory. Holding eps makes the lam = 0 phase of deterministic DDIM one larger DDIM step.

Data-prediction multistep solvers (DPM-Solver++) are our extension (FRDiff left them open):
they integrate x0(lambda), lambda = log(alpha / sigma), from a history of x0 predictions. There
frdiff mixes in x0 space, and a reuse step gets the keyframe's x0 either held (`hold`: the
step becomes a first-order DPM-Solver++ = DDIM step) or `extrapolate`d linearly in lambda
from the last two keyframes, so the solver's history stays the piecewise-linear x0(lambda)
that its second-order update assumes. Which schedulers count is decided by their class
(schedulers.is_data_prediction_solver): DPM-Solver multistep / singlestep with algorithm_type
dpmsolver++ or sde-dpmsolver++. Every other scheduler (DDIM, Euler, DDPM, Heun, UniPC...)
gets the eps hold (`EpsHold`), whatever keys its config kept from a scheduler swap.

Flow matching (prediction type "flow", noise.py): x = (1 - s) x0 + s eps and the model predicts
v = eps - x0, so eps = x + (1 - s) v and x0 = x - s v, exactly. Holding eps and x0 holds v: the
lam = 0 phase of a Euler flow sampler is one larger Euler step, DDIM's analogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")  # flow: v = eps - x0 (noise.py)


@dataclass(frozen=True)
class ScoreMixing:
    """The lam(r) schedule; `ScoreMixing.off()` is pure feature reuse (lam = 1)."""

    slope: float = 30.0
    bias: float = 0.5
    enabled: bool = True
    multistep: str = "extrapolate"  # reuse steps of DPM-Solver++: "hold" or "extrapolate"

    def __post_init__(self):
        for name in ("slope", "bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r:.60}")
            try:
                object.__setattr__(self, name, float(value))
            except OverflowError:
                raise ValueError(f"{name} is too large: {value!r:.60}") from None
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be True or False, got {self.enabled!r:.60}")
        if not (0.0 < self.slope <= 1e4):
            raise ValueError(f"slope must be in (0, 1e4], got {self.slope}")
        if not (0.0 <= self.bias <= 1.0):
            raise ValueError(f"bias must be in [0, 1], got {self.bias}")
        if not isinstance(self.multistep, str) or self.multistep not in ("hold", "extrapolate"):
            raise ValueError(f"multistep must be 'hold' or 'extrapolate', got {self.multistep!r}")

    @classmethod
    def off(cls) -> "ScoreMixing":
        return cls(enabled=False)

    @classmethod
    def reduced_nfe(cls, multistep: str = "extrapolate") -> "ScoreMixing":
        """lam = 0 at every non-keyframe step: no FR forward, the keyframe prediction is reused
        (the reduced-NFE half of FRDiff on its own; per policy step, mode N does the same)."""
        return cls(slope=1e4, bias=1.0, multistep=multistep)

    def lam(self, step: int, num_steps: int) -> float:
        """Weight of the FR output at `step` of `num_steps` (step 0 is the noisiest)."""
        if not self.enabled:
            return 1.0
        r = step / num_steps
        return min(1.0, max(0.0, (self.slope * (r - self.bias) + 2.0) / 4.0))


@dataclass
class Prediction:
    """A model output held in the parametrisation-free form (eps and/or x0)."""

    eps: torch.Tensor | None
    x0: torch.Tensor | None
    extra: torch.Tensor | None  # channels beyond the prediction (e.g. learned variance)

    def mix(self, other: "Prediction", lam: float) -> "Prediction":
        """lam * self + (1 - lam) * other, field by field (Eq. of section 3)."""
        def blend(a, b):
            if a is None:
                return None
            return torch.lerp(b, a, lam.to(a.dtype) if isinstance(lam, torch.Tensor) else lam)
        return Prediction(blend(self.eps, other.eps), blend(self.x0, other.x0),
                          blend(self.extra, other.extra))


def to_prediction(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor,
                  sigma: torch.Tensor, prediction_type: str) -> Prediction:
    """Split a model output into eps / x0 at a point with x = alpha x0 + sigma eps."""
    c = x.shape[1]
    out, extra = output[:, :c], (output[:, c:] if output.shape[1] > c else None)
    if prediction_type == "epsilon":
        return Prediction(out, None, extra)
    if prediction_type == "sample":
        return Prediction(None, out, extra)
    if prediction_type == "v_prediction":  # no division: both are well conditioned
        return Prediction(alpha * out + sigma * x, alpha * x - sigma * out, extra)
    if prediction_type == "flow":  # x = (1 - s) x0 + s eps, v = eps - x0 (alpha = 1 - s)
        return Prediction(x + alpha * out, x - sigma * out, extra)
    raise ValueError(f"unsupported prediction_type {prediction_type!r}; "
                     f"supported: {', '.join(PREDICTION_TYPES)}")


def from_prediction(p: Prediction, alpha: torch.Tensor, sigma: torch.Tensor,
                    prediction_type: str) -> torch.Tensor:
    """The model output a scheduler expects at a point with coefficients alpha, sigma."""
    if prediction_type == "epsilon":
        out = p.eps
    elif prediction_type == "sample":
        out = p.x0
    elif prediction_type == "flow":
        out = p.eps - p.x0
    else:
        out = alpha * p.eps - sigma * p.x0
    return out if p.extra is None else torch.cat([out, p.extra], 1)


def x0_of(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
          prediction_type: str) -> torch.Tensor:
    """The data prediction x0 implied by a model output (first x.shape[1] channels)."""
    out = output[:, : x.shape[1]]
    if prediction_type == "epsilon":
        return (x - sigma * out) / alpha
    if prediction_type == "v_prediction":
        return alpha * x - sigma * out
    if prediction_type == "flow":
        return x - sigma * out
    return out


def eps_of(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
           prediction_type: str) -> torch.Tensor:
    """The noise prediction eps implied by a model output (first x.shape[1] channels)."""
    out = output[:, : x.shape[1]]
    if prediction_type == "epsilon":
        return out
    if prediction_type == "v_prediction":
        return alpha * out + sigma * x
    if prediction_type == "flow":
        return x + alpha * out
    return (x - alpha * out) / sigma


def in_space(space: str, output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor,
             sigma: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """A model output as the prediction score mixing blends: eps (space "eps") or x0 ("x0")."""
    if space not in ("eps", "x0"):
        raise ValueError(f"space must be 'eps' or 'x0', got {space!r}")
    fn = eps_of if space == "eps" else x0_of
    return fn(output, x, alpha, sigma, prediction_type)


def output_for_x0(x0: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                  prediction_type: str) -> torch.Tensor:
    """The model output from which a solver at x recovers exactly x0."""
    if prediction_type == "epsilon":
        return (x - alpha * x0) / sigma
    if prediction_type == "v_prediction":
        return (alpha * x - x0) / sigma
    if prediction_type == "flow":  # v = (x - x0) / s
        return (x - x0) / sigma
    return x0


def log_snr(alpha: torch.Tensor, sigma: torch.Tensor) -> float:
    """lambda = log(alpha / sigma) of a point (the first sample's: one timestep per call)."""
    return float((alpha / sigma).flatten()[0].log())


def extra_channels(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
    """Channels of a model output beyond the prediction (e.g. learned variance), or None."""
    return output[:, x.shape[1]:] if output.shape[1] > x.shape[1] else None


def forecast_x0(history: list[tuple[float, torch.Tensor]], lam_now: float, mode: str) -> torch.Tensor:
    """x0 at log-SNR lam_now from the keyframes' (lambda, x0): held, or linear in lambda."""
    lam_k, x0_k = history[-1]
    if mode == "hold" or len(history) < 2:
        return x0_k
    lam_j, x0_j = history[-2]
    return x0_k + (lam_now - lam_k) / (lam_k - lam_j) * (x0_k - x0_j)


def _is_one(weight) -> bool:
    return not isinstance(weight, torch.Tensor) and weight == 1.0


def _value(weight) -> float:
    """A weight's value (the tuner's gates are tensors with a graph)."""
    return float(weight.detach()) if isinstance(weight, torch.Tensor) else float(weight)


class EpsHold:
    """Noise-prediction solvers (DDIM, Euler): keep eps_key, mix lam eps_FR + (1 - lam) eps_key.

    The tuner uses the same mixer with soft gates: `keep(..., weight=k)` makes the key
    k * new + (1 - k) * old, and `mix` takes a tensor lam (k + (1 - k) lam)."""

    def __init__(self, prediction_type: str):
        self.kind = prediction_type
        self.space = "x0" if prediction_type == "sample" else "eps"
        self.keys: dict[int, Prediction] = {}  # per CFG branch

    def clear(self) -> None:
        self.keys.clear()

    def keep(self, out: torch.Tensor, x, alpha, sigma, branch: int, weight=1.0) -> None:
        """At a keyframe: store eps_key (and x0_key) for the following reuse steps."""
        new, old = to_prediction(out, x, alpha, sigma, self.kind), self.keys.get(branch)
        self.keys[branch] = new if old is None or _is_one(weight) else new.mix(old, weight)

    def detach(self) -> None:
        self.keys = {b: Prediction(*[None if t is None else t.detach() for t in
                                     (p.eps, p.x0, p.extra)]) for b, p in self.keys.items()}

    def mix(self, out: torch.Tensor | None, x, alpha, sigma, branch: int, lam: float):
        """(key, mix, model output) at a reuse step, key and mix in `space`; out None: lam = 0."""
        key = self.keys[branch]
        pred = key if out is None else to_prediction(out, x, alpha, sigma, self.kind).mix(key, lam)
        return (getattr(key, self.space), getattr(pred, self.space),
                from_prediction(pred, alpha, sigma, self.kind))


class X0Forecast:
    """Data-prediction solvers (DPM-Solver++): keep (lambda, x0_key), forecast x0 in between.

    With the tuner's soft gates (binary in the forward pass, straight-through): a step whose
    gate k is 1 appends k * x0 + (1 - k) * forecast, so the gradient sees the forecast."""

    space = "x0"

    def __init__(self, prediction_type: str, multistep: str):
        self.kind, self.multistep = prediction_type, multistep
        self.keys: dict[int, list] = {}  # per CFG branch: the last two (lambda, x0, extras)

    def clear(self) -> None:
        self.keys.clear()

    def keep(self, out: torch.Tensor, x, alpha, sigma, branch: int, weight=1.0) -> None:
        """At a keyframe: append (log-SNR, x0_key, extra channels) to the last two."""
        history = self.keys.setdefault(branch, [])
        if _value(weight) < 0.5:  # a soft gate that is 0 in the forward pass: no keyframe
            return
        snr, x0 = log_snr(alpha, sigma), x0_of(out, x, alpha, sigma, self.kind)
        if history and not _is_one(weight):
            forecast = forecast_x0([(v, t) for v, t, _ in history], snr, self.multistep)
            x0 = torch.lerp(forecast, x0, weight.to(x0.dtype))
        history.append((snr, x0, extra_channels(out, x)))
        del history[:-2]

    def detach(self) -> None:
        self.keys = {b: [(v, t.detach(), None if e is None else e.detach()) for v, t, e in h]
                     for b, h in self.keys.items()}

    def mix(self, out: torch.Tensor | None, x, alpha, sigma, branch: int, lam: float):
        """(x0_key forecast, mixed x0, model output) at a reuse step; out None: lam = 0."""
        history = self.keys[branch]
        key = forecast_x0([(snr, v) for snr, v, _ in history], log_snr(alpha, sigma), self.multistep)
        x0, extras = key, history[-1][2]
        if out is not None:
            w = lam.to(key.dtype) if isinstance(lam, torch.Tensor) else lam
            x0 = torch.lerp(key, x0_of(out, x, alpha, sigma, self.kind), w)
            if _value(lam) > 0.0:  # at lam = 0 (the tuner's soft pass) the key's extras
                extras = extra_channels(out, x)
        sample = output_for_x0(x0, x, alpha, sigma, self.kind)
        return key, x0, sample if extras is None else torch.cat([sample, extras], 1)


def mixer_for(data_prediction: bool, prediction_type: str, multistep: str) -> EpsHold | X0Forecast:
    """The mixer of a scheduler family: x0 forecast for DPM-Solver++, else eps hold."""
    return X0Forecast(prediction_type, multistep) if data_prediction else EpsHold(prediction_type)


@dataclass
class MixEvent:
    """One model call at a reuse step, as score mixing saw it (for observers; section 3)."""

    step: int
    branch: int
    lam: float  # weight of the FR output (0: no call was made)
    space: str  # "eps" (DDIM, Euler) or "x0" (DPM-Solver++, x0-predicting models)
    prediction_type: str
    x: torch.Tensor  # the model input, float; x = alpha x0 + sigma eps
    alpha: torch.Tensor
    sigma: torch.Tensor
    key: torch.Tensor  # eps_key (or x0_key, held or forecast): the reduced-NFE prediction
    fr: torch.Tensor | None  # the FR output; at lam = 0 an analysis-only forward's, None at
    # N steps and adaptive lam = 0 steps (no FR modes to run there)
    mixed: torch.Tensor  # lam * fr + (1 - lam) * key: the prediction the sampler gets
    output: torch.Tensor  # the model output returned to the pipeline, in its units
    args: tuple  # the model call's arguments (to rerun it, e.g. at full compute)
    kwargs: dict
