"""Policy specs: every one-line name of a policy, parsed in one place through one registry.

    parse_policy("uniform:2", 50)                                  # a KeyframePolicy
    parse_policy("deep:3+forecast", 50, SpecContext(blocks=block_depths(pipe)))
    parse_spec("dpmsolver@20:magnitude:0.24", 28, context)        # Parsed(policy, "dpmsolver", 20)

A spec is `PREFIX:ARGS`, a keyframe policy's optionally followed by options (`+forecast`,
`+forecast:logsnr`, `+cfg:K[:START]`, in any order); where the registry reads files, a spec no
prefix names is policy JSON text or the path of a policy JSON file (options allowed). Each
prefix is a `Prefix`: its grammar, an example, what it makes, and its parser. `LIBRARY` holds
the library's (uniform, deep, adaptive, magnitude, SAMPLER@STEPS: the command line's and
`KeyframePolicy.parse`'s); the app builds its own registry from some of them and its own
names (app/specs.py). What a prefix needs besides its text and the step count comes in a
`SpecContext`: the model's blocks (deep, magnitude), a source of shipped magnitude
calibrations (magnitude: this module never reads the testbed's files itself), the samplers a
caller can run (SAMPLER@STEPS). Every refusal names the spec, what was expected and an example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Union

from .adaptive import AdaptivePolicy
from .magnitude import Calibration, magnitude_policy
from .modes import Mode
from .policy import FORECASTS, KeyframePolicy, _count, _kind, use_spec_parser

Policy = Union[KeyframePolicy, AdaptivePolicy]
OPTIONS = "+forecast[:step|logsnr], +cfg:K[:START]"
FILES = "policy JSON text or the path of a policy JSON file"


@dataclass(frozen=True)
class SpecContext:
    """What a spec may need beyond its text and the step count; a prefix whose needs are not
    met says so."""

    blocks: Mapping[str, int] | None = None  # policy block names -> depth, in call order (block_depths)
    residual: bool = False  # every policy block a residual map: magnitude's default ROW is R, else F
    model: str | None = None  # the model's name (messages; calibrations and the app's files by name)
    sampler: str | None = None  # the run's sampler, as `calibration` and the app's files name it
    # (model, sampler, steps) -> the shipped magnitude calibration, or None where none ships
    calibration: Callable[[str | None, str | None, int], Calibration | None] | None = None
    samplers: tuple[str, ...] | None = None  # SAMPLER@STEPS: the samplers a policy may run on
    # instead (None: only the run's own, and a SAMPLER@ spec is not one)


@dataclass(frozen=True)
class Parsed:
    """A parsed spec: its policy, and the sampler and step count it runs on (`sampler` None:
    the run's own; another one only from SAMPLER@STEPS:SPEC)."""

    policy: Policy
    steps: int
    sampler: str | None = None


@dataclass(frozen=True)
class Request:
    """One spec being parsed by its prefix: what the parser reads, and how it says what is wrong."""

    spec: str  # the whole spec, as given (messages name it)
    args: tuple[str, ...]  # after `PREFIX:`, split at ':' (the options taken off)
    num_steps: int
    context: SpecContext
    prefix: "Prefix"
    registry: "Registry"

    def bad(self, why: str = "") -> ValueError:
        """The spec does not follow its prefix's grammar: why, the grammar and the example."""
        return ValueError(f"bad policy {self.spec!r}{': ' + why if why else ''}; expected "
                          f"{self.prefix.grammar}, e.g. {self.prefix.example}")

    def refuse(self, why: str) -> ValueError:
        """The spec is well formed but cannot be made here (a missing calibration, model blocks)."""
        return ValueError(f"bad policy {self.spec!r}: {why}")

    def arity(self, low: int, high: int) -> tuple[str, ...]:
        """The args, if there are `low` to `high` of them; else `bad`."""
        if not low <= len(self.args) <= high:
            raise self.bad()
        return self.args

    def interval(self, value: str) -> int:
        """A keyframe interval K: a whole number of steps >= 1."""
        try:
            k = int(value)
        except ValueError:
            raise self.bad(f"{value!r:.40} is not a whole number of steps") from None
        if k < 1:
            raise self.bad("the interval must be at least 1")
        return k

    def number(self, value: str, what: str) -> float:
        """A number (a threshold), named `what` in the grammar."""
        try:
            return float(value)
        except ValueError:
            raise self.bad(f"{what} {value!r:.40} is not a number") from None

    def blocks(self, what: str) -> tuple[str, ...]:
        """The model's policy block names, which `what` needs."""
        if self.context.blocks is None:
            raise self.refuse(f"{what} needs the model's blocks (KeyframePolicy.parse(spec, steps, "
                              f"block_depths(pipe)) or SpecContext(blocks=...))")
        return tuple(self.context.blocks)


@dataclass(frozen=True)
class Prefix:
    """One spec grammar: `name:` starts it (or `matches(head)` says it does), `parse` makes its
    policy (or a `Parsed` on another sampler), `options` says whether +forecast/+cfg follow it,
    and `inner` that its last argument is a whole spec, which carries its own options."""

    name: str
    grammar: str
    example: str
    about: str
    parse: Callable[[Request], "Policy | Parsed"]
    options: bool = True
    inner: bool = False
    matches: Callable[[str], bool] | None = None  # None: the spec's head is `name`
    applies: Callable[[SpecContext], bool] | None = None  # None: in every context

    def names(self, head: str, context: SpecContext) -> bool:
        """Is a spec whose text before the first ':' is `head` this prefix's, here?"""
        if self.applies is not None and not self.applies(context):
            return False
        return self.matches(head) if self.matches is not None else head == self.name

    def row(self) -> str:
        """Its line of the table of specs (docs/guide.md)."""
        grammar = self.grammar.replace("|", "\\|")  # a table cell's pipes, even in code
        return f"| `{grammar}` | `{self.example}` | {self.about} |"


class Registry:
    """Prefixes, in the order messages and help list them; with `files`, a spec no prefix names
    is read as policy JSON text or a policy file's path (the app's registry reads no files)."""

    def __init__(self, prefixes: Iterable[Prefix], files: bool = False):
        self.prefixes = {p.name: p for p in prefixes}
        self.files = files

    def __getitem__(self, name: str) -> Prefix:
        return self.prefixes[name]

    def __iter__(self):
        return iter(self.prefixes.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.prefixes)

    def find(self, spec: str, context: SpecContext | None = None) -> Prefix | None:
        """The prefix a spec starts with, here; None if none does."""
        head, context = spec.partition(":")[0].strip(), context or SpecContext()
        return next((p for p in self if p.names(head, context)), None)

    def expected(self, context: SpecContext | None = None) -> str:
        """Every grammar that applies here, for messages and help: "uniform:K[...], deep:..., ..."."""
        context = context or SpecContext()
        grammars = [p.grammar for p in self if p.applies is None or p.applies(context)]
        if self.files:
            return ", ".join(grammars + [FILES])
        return ", ".join(grammars[:-1]) + f" or {grammars[-1]}" if len(grammars) > 1 else grammars[0]

    def table(self) -> str:
        """The prefixes as a Markdown table."""
        return "\n".join(["| spec | e.g. | makes |", "|---|---|---|"] + [p.row() for p in self])

    def parse(self, spec: str, num_steps: int, context: SpecContext | None = None) -> Parsed:
        """The spec's policy for `num_steps` steps (and its sampler); ValueError naming the spec,
        the grammar expected and an example where it is wrong."""
        if not isinstance(spec, str):
            raise ValueError(f"a policy spec must be a string, got {_kind(spec)}; e.g. uniform:2")
        num_steps, context = _count(num_steps, "num_steps"), context or SpecContext()
        prefix = self.find(spec, context)
        if prefix is None:
            return Parsed(self._file(spec, context), num_steps)
        base, finish = (spec, None) if prefix.inner else split_options(spec)
        if finish is not None and not prefix.options:
            allowed = [f"{p.name}:" for p in self if p.options and not p.inner] + (
                ["a policy file"] if self.files else [])
            raise ValueError(f"bad policy {spec!r}: +forecast and +cfg apply to keyframe policies "
                             f"({', '.join(allowed)}), not {prefix.name}: ones; e.g. uniform:2+cfg:2")
        rest = base.partition(":")[2]
        request = Request(spec, tuple(rest.split(":")) if rest else (), num_steps, context, prefix, self)
        try:
            made = prefix.parse(request)
        except ValueError as err:  # a constructor's check: said again with the spec and its grammar
            if str(err).startswith("bad policy"):
                raise
            raise request.bad(str(err)) from None
        parsed = made if isinstance(made, Parsed) else Parsed(made, num_steps)
        return replace(parsed, policy=finish(parsed.policy)) if finish else parsed

    def parse_policy(self, spec: str, num_steps: int, context: SpecContext | None = None) -> Policy:
        """`parse`'s policy, for a spec on the run's own sampler."""
        parsed = self.parse(spec, num_steps, context)
        if parsed.sampler is not None:
            raise ValueError(f"bad policy {spec!r}: it runs on {parsed.sampler}, not on this run's "
                             f"sampler; parse it with frdiff.specs.parse_spec")
        return parsed.policy

    def _file(self, spec: str, context: SpecContext) -> KeyframePolicy:
        """A spec no prefix names: policy JSON text or a policy file (options allowed), where
        this registry reads them; else the list of what it takes."""
        base, finish = split_options(spec)
        if not self.files or not (base.lstrip().startswith(("{", "[")) or os.path.exists(base)):
            raise ValueError(f"bad policy {spec!r}; expected {self.expected(context)}, e.g. "
                             f"{next(iter(self)).example}")
        policy = KeyframePolicy.from_json(base)
        return finish(policy) if finish else policy


def split_options(spec: str) -> tuple[str, "Callable[[KeyframePolicy], KeyframePolicy] | None"]:
    """A spec's options split off, with the function that applies them to the parsed policy:
    `+forecast[:step|logsnr]` (reuse extrapolates, `with_forecast`) and `+cfg:K[:START]` (the
    unconditional CFG half computes every K steps from START, `with_uncond_every`), in any
    order: ("uniform:2", f) for "uniform:2+cfg:2+forecast"; (spec, None) without options (and
    for JSON text)."""
    if spec.lstrip().startswith(("{", "[")):
        return spec, None
    base, options = spec, []
    while True:  # options from the end ("+name..."); a '+' elsewhere stays in the spec (a path)
        head, plus, tail = base.rpartition("+")
        if not plus or tail.partition(":")[0] not in ("forecast", "cfg"):
            break
        base, options = head, [tail] + options
    if not options:
        return spec, None
    forecast = cfg = None
    for option in options:
        name, _, value = option.partition(":")
        parts = value.split(":")
        if name == "forecast" and (value or "step") in FORECASTS:
            forecast = value or "step"
        elif name == "cfg" and 1 <= len(parts) <= 2 and all(x.isdigit() for x in parts) and int(parts[0]) >= 1:
            cfg = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
        else:
            raise ValueError(f"bad policy option {'+' + option!r:.60} in {spec!r:.80}; expected "
                             f"+forecast, +forecast:step, +forecast:logsnr or +cfg:K[:START] (K >= 1), "
                             f"e.g. uniform:2+cfg:2+forecast")

    def finish(policy: KeyframePolicy) -> KeyframePolicy:
        policy = policy.with_forecast(forecast) if forecast else policy
        return policy.with_uncond_every(*cfg) if cfg else policy
    return base, finish


# -- the library's prefixes ------------------------------------------------------------------
def _uniform(request: Request) -> KeyframePolicy:
    args = request.arity(1, 2)
    interval = request.interval(args[0])
    return KeyframePolicy.uniform(request.num_steps, interval, args[1] if len(args) > 1 else "fr")


def _deep(request: Request) -> KeyframePolicy:
    request.blocks("a deep:K policy")
    args = request.arity(1, 3)
    interval = request.interval(args[0])
    try:
        keep = int(args[1]) if len(args) > 1 else 1
    except ValueError:
        raise request.bad(f"LEVELS {args[1]!r:.40} is not a whole number") from None
    shallow = args[2] if len(args) > 2 else Mode.KEYFRAME.value
    return KeyframePolicy.deep_skip(dict(request.context.blocks), request.num_steps, interval, keep, shallow)


def _adaptive(request: Request) -> AdaptivePolicy:
    args = request.arity(1, 3)
    threshold = request.number(args[0], "THRESHOLD")  # AdaptivePolicy says which numbers it takes
    try:
        max_reuse = int(args[2]) if len(args) > 2 else None
    except ValueError:
        raise request.bad(f"MAX_REUSE {args[2]!r:.40} is not a whole number") from None
    return AdaptivePolicy(request.num_steps, threshold, args[1] if len(args) > 1 else "fr", max_reuse)


def _magnitude(request: Request) -> KeyframePolicy:
    args = request.arity(1, 2)
    threshold = request.number(args[0], "THRESHOLD")
    if not threshold >= 0:
        raise request.bad(f"needs THRESHOLD >= 0, got {args[0]!r:.40}")
    c = request.context
    if c.calibration is None:
        raise request.refuse("magnitude: needs the model's shipped calibration for the sampler and "
                             "step count, which this caller does not give (the command line and the "
                             "app do: SpecContext(calibration=...))")
    names = request.blocks("a magnitude: policy")
    calibration = c.calibration(c.model, c.sampler, request.num_steps)
    if calibration is None:
        raise request.refuse(f"no shipped magnitude calibration for {c.model} {c.sampler} "
                             f"{request.num_steps} steps (python -m analysis.calibrate makes one)")
    default = Mode.RESIDUAL if c.residual else Mode.FEATURE_REUSE
    row = args[1] if len(args) > 1 else default.value
    return magnitude_policy(calibration, threshold, row * len(names) if len(row) == 1 else row, names)


def _on_sampler(request: Request) -> Parsed:
    head, _, rest = request.spec.partition(":")
    sampler, _, steps = head.strip().partition("@")
    names = request.context.samplers or ()
    if sampler not in names:
        raise request.bad(f"SAMPLER {sampler!r:.40} is not one of {', '.join(names)}")
    if not steps.isdigit() or int(steps) < 1 or not rest:
        raise request.bad()
    inner = replace(request.context, sampler=sampler, samplers=None)  # one sampler, not nested
    return replace(request.registry.parse(rest, int(steps), inner), sampler=sampler)


UNIFORM = Prefix("uniform", "uniform:K[:fr|block|residual|none]", "uniform:2",
                 "a keyframe every K steps; between them every block uses feature reuse (F), or skips "
                 "(`block`: S), reuses its residual (`residual`: R) or the step makes no call (`none`: N)",
                 _uniform)
DEEP = Prefix("deep", "deep:K[:LEVELS[:F]]", "deep:3",
              "a keyframe every K steps; between them whole-block skip (S) from the deepest level out, "
              "blocks shallower than LEVELS (default 1) computing, or with `F` using feature reuse "
              "(DeepCache's granularity)", _deep)
ADAPTIVE = Prefix("adaptive", "adaptive:THRESHOLD[:fr|skip|residual[:MAX_REUSE]]", "adaptive:0.1",
                  "keyframes chosen at run time, once a probe block's change reaches THRESHOLD "
                  "(an AdaptivePolicy; no options)", _adaptive, options=False)
MAGNITUDE = Prefix("magnitude", "magnitude:THRESHOLD[:ROW]", "magnitude:0.12",
                   "MagCache's schedule from the model's shipped calibration for the sampler and steps; "
                   "ROW: the reuse steps' modes, one for every block or one per block (default R "
                   "where every block is a residual map, else F)", _magnitude)
ON_SAMPLER = Prefix("SAMPLER@STEPS", "SAMPLER@STEPS:SPEC", "dpmsolver@20:uniform:2",
                    "SPEC on another sampler and step count, measured against the run's own full "
                    "compute (`sweep --policies` only)", _on_sampler, inner=True,
                    matches=lambda head: "@" in head, applies=lambda c: c.samplers is not None)
LIBRARY = Registry([UNIFORM, DEEP, ADAPTIVE, MAGNITUDE, ON_SAMPLER], files=True)


def parse_spec(spec: str, num_steps: int, context: SpecContext | None = None,
               registry: Registry = LIBRARY) -> Parsed:
    """A spec's policy for `num_steps` steps, and the sampler and steps it runs on."""
    return registry.parse(spec, num_steps, context)


def parse_policy(spec: str, num_steps: int, context: SpecContext | None = None,
                 registry: Registry = LIBRARY) -> Policy:
    """A spec's policy for `num_steps` steps on the run's own sampler (`KeyframePolicy.parse`)."""
    return registry.parse_policy(spec, num_steps, context)


use_spec_parser(lambda spec, num_steps, depths=None: parse_policy(spec, num_steps, SpecContext(blocks=depths)))
