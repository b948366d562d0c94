"""Keyframe policies: at each step, what every reusable block does.

A block's mode at a step is one of
  K  keyframe: compute everything and refresh the block's caches,
  F  feature reuse (FRDiff): reuse the cached expensive parts, recompute the rest,
  S  skip: reuse the block's whole output from the last step it ran (DeepCache/FORA style),
  R  residual reuse (residual blocks only: DiT/PixArt transformer blocks, a UNet's mid block):
     the block is not run; its output is its *current* input plus its residual (output minus
     input) from the last step it ran. A run of R blocks is MagCache's stack form: the input
     of the run plus the run's summed cached residual, everything around it fresh.
  N  no call (a whole step, every block): the network is not called and the last keyframe's
     prediction is reused, as score mixing does where lam = 0 (reduced NFE; with DDIM this is
     plain sampling with fewer steps). `uniform(n, k, reuse="none")` is that schedule.
A step where every block is K is a *keyframe step*: score mixing stores eps_key there.
With `forecast` ("step" or "logsnr") the reused values (F's cached parts, S's outputs, R's
residuals) are not held but extrapolated linearly from their last two keyframe values, in the
step index or in the log-SNR of the step's timestep (TaylorSeer's first order, per cached part).
With `uncond` (one letter per step, K or R) classifier-free guidance reuses too: at an R step the
model runs on the conditional half of a batched CFG call only, and the unconditional half is
the conditional output minus the guidance difference (cond - uncond) of the last step that
computed both; the step's block modes apply to the half that runs.
Step 0 is always a keyframe step. Steps are counted from the noisiest, 0..num_steps-1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .adaptive import AdaptivePolicy
from .modes import Mode

MODES = tuple(m.value for m in Mode)  # the letters a schedule holds
FORECASTS = ("step", "logsnr")
UNCOND = (Mode.KEYFRAME.value, Mode.RESIDUAL.value)  # the unconditional CFG half computes (K) or
# reuses its guidance difference (R)
REUSE_NAMES = ("fr", "block", "residual", "none")  # the reuse names of `uniform`/`from_steps` (Mode.from_reuse)


@dataclass(frozen=True)
class KeyframePolicy:
    """`schedule[i]` is one mode per block at step i (a single character covers all blocks)."""

    schedule: tuple[str, ...]
    blocks: tuple[str, ...] | None = None
    forecast: str | None = None  # None: reuse holds cached values; "step"/"logsnr": extrapolates
    uncond: str | None = None  # per step K/R: does the unconditional CFG half compute (None: always)

    def __post_init__(self):
        if self.forecast is not None and (not isinstance(self.forecast, str)
                                          or self.forecast not in FORECASTS):
            raise ValueError(f"forecast must be None, 'step' or 'logsnr', got {_kind(self.forecast)}")
        if self.uncond is not None:
            if not isinstance(self.uncond, str) or set(self.uncond) - set(UNCOND):
                raise ValueError(f"uncond must be None or a string of K (the unconditional CFG half "
                                 f"computes) and R (it reuses its guidance difference), one per "
                                 f"step; got {_kind(self.uncond)}")
            if set(self.uncond) <= {Mode.KEYFRAME}:
                object.__setattr__(self, "uncond", None)  # computes at every step: the default
        rows = _strings(self.schedule, "schedule", "mode strings, one per step, e.g. ('K', 'F')",
                        "step", "string of modes K, F, S, R, N")
        object.__setattr__(self, "schedule", rows)
        if self.blocks is not None:
            names = _strings(self.blocks, "blocks", "block names", "blocks", "block name")
            object.__setattr__(self, "blocks", names)
        if not self.schedule:
            raise ValueError("a policy needs at least one step")
        width = len(self.blocks) if self.blocks is not None else 1
        for i, row in enumerate(self.schedule):
            if not isinstance(row, str) or len(row) not in {1, width} or set(row) - set(MODES):
                raise ValueError(f"step {i}: {row!r} is not {width} or 1 of the modes "
                                 f"{Mode.legend(parenthesised=True)}")
            if Mode.NO_CALL in row and set(row) != {Mode.NO_CALL}:
                raise ValueError(f"step {i}: {row!r} mixes N with other modes; N (no network "
                                 f"call) holds for a whole step, every block")
        if set(self.schedule[0]) != {Mode.KEYFRAME}:
            raise ValueError("step 0 must be a keyframe for every block (its caches are empty)")
        if self.uncond is not None and len(self.uncond) != len(self.schedule):
            raise ValueError(f"uncond has {len(self.uncond)} letters for {len(self.schedule)} steps; "
                             f"give one K or R per step")
        if self.uncond is not None and self.uncond[0] != Mode.KEYFRAME:
            raise ValueError("uncond: step 0 must compute the unconditional half (K): nothing is "
                             "cached yet")
        if self.blocks is not None and len(set(self.blocks)) != len(self.blocks):
            raise ValueError("block names must be unique")
        odd = [b for b in self.blocks or () if not b or b.startswith("#") or len(b.split()) != 1]
        if odd:  # module names; the text grid separates a name from its modes by whitespace
            raise ValueError(f"block name {odd[0]!r:.60} is not a module name (empty, with spaces "
                             f"or starting with '#')")

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def uniform(cls, num_steps: int, interval: int, reuse: str = "fr") -> "KeyframePolicy":
        """A keyframe every `interval` steps; interval=1 computes every step in full. Between
        keyframes every block uses FR (reuse="fr"), skips (reuse="block"), reuses its residual
        (reuse="residual", residual blocks only) or the step makes no call at all (reuse="none":
        reduced NFE, i.e. fewer steps)."""
        num_steps, interval = _count(num_steps, "num_steps"), _count(interval, "interval")
        return cls.from_steps(num_steps, range(0, num_steps, interval), reuse)

    @classmethod
    def from_steps(cls, num_steps: int, keyframes: Iterable[int], reuse: str = "fr") -> "KeyframePolicy":
        """Keyframes at the given steps; between them every block reuses ("fr", "block",
        "residual") or no call is made ("none")."""
        num_steps = _count(num_steps, "num_steps")
        if not isinstance(reuse, str) or reuse not in REUSE_NAMES:
            raise ValueError(f"reuse must be one of {', '.join(REUSE_NAMES)}, got {_kind(reuse)}")
        if isinstance(keyframes, (str, bytes, dict)) or not isinstance(keyframes, Iterable):
            raise ValueError(f"keyframes must be step numbers, got {_kind(keyframes)}")
        keys = list(keyframes)
        not_steps = [k for k in keys if isinstance(k, bool) or not isinstance(k, int)]
        if not_steps:
            raise ValueError(f"keyframe steps must be whole numbers, got {_kind(not_steps[0])}")
        keys = set(keys)
        bad = sorted(k for k in keys if not 0 <= k < num_steps)
        if bad:
            raise ValueError(f"keyframe steps {bad[:8]} are outside 0..{num_steps - 1}")
        if 0 not in keys:
            raise ValueError("step 0 must be a keyframe")
        between = Mode.from_reuse(reuse).value
        return cls(tuple(Mode.KEYFRAME.value if i in keys else between for i in range(num_steps)))

    @classmethod
    def deep_skip(cls, depths: dict[str, int], num_steps: int, interval: int,
                  keep_levels: int = 1, shallow: str = Mode.KEYFRAME) -> "KeyframePolicy":
        """Whole-block reuse from the deepest level outward (DeepCache's granularity): between
        keyframes, blocks at depth >= keep_levels are skipped (S); the shallower ones compute
        (shallow="K") or use FR (shallow="F"). `depths` maps block names to depth (0 = outermost)."""
        if not isinstance(shallow, str) or shallow not in (Mode.KEYFRAME, Mode.FEATURE_REUSE):
            raise ValueError(f"shallow must be 'K' or 'F', got {_kind(shallow)}")
        keep_levels = _count(keep_levels, "keep_levels", low=0)
        if not isinstance(depths, dict) or not all(isinstance(d, int) for d in depths.values()):
            raise ValueError(f"depths must map block names to depths, got {_kind(depths)}")
        keys = set(cls.uniform(num_steps, interval).keyframes)
        reuse = "".join(Mode.SKIP if d >= keep_levels else shallow for d in depths.values())
        return cls(tuple(Mode.KEYFRAME * len(depths) if i in keys else reuse for i in range(num_steps)),
                   tuple(depths))

    @classmethod
    def per_block(cls, blocks: Sequence[str], columns: dict[str, str]) -> "KeyframePolicy":
        """From one mode string per block, e.g. {"mid_block": "KSKS", ...}; all of equal length."""
        blocks = _strings(blocks, "blocks", "block names", "block", "block name")
        if not isinstance(columns, dict) or not all(isinstance(m, str) for m in columns.values()):
            raise ValueError(f"columns must map block names to mode strings, got {_kind(columns)}")
        missing = [b for b in blocks if b not in columns]
        extra = [b for b in columns if b not in blocks]
        if missing or extra:
            raise ValueError(f"per-block policy: missing {missing}, unknown {extra}")
        lengths = {len(columns[b]) for b in blocks}
        if not blocks:
            raise ValueError("a per-block policy needs at least one block")
        if len(lengths) != 1:
            raise ValueError("every block's mode string must cover the same number of steps")
        n = lengths.pop()
        return cls(tuple("".join(columns[b][i] for b in blocks) for i in range(n)), tuple(blocks))

    # -- queries -----------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return len(self.schedule)

    def mode(self, step: int, block_index: int) -> str:
        row = self.schedule[step]
        return row[0] if len(row) == 1 else row[block_index]

    def is_keyframe(self, step: int) -> bool:
        return set(self.schedule[step]) == {Mode.KEYFRAME}

    def no_call(self, step: int) -> bool:
        """Does this step skip the network altogether (mode N)?"""
        return self.schedule[step][0] == Mode.NO_CALL

    @property
    def has_no_call(self) -> bool:
        """Does any step skip the network altogether (mode N)?"""
        return any(map(self.no_call, range(self.num_steps)))

    def uncond_reused(self, step: int) -> bool:
        """Does the unconditional CFG half reuse its guidance difference at this step (uncond R)?
        Not at N steps, which make no call."""
        return self.uncond is not None and self.uncond[step] == Mode.RESIDUAL and not self.no_call(step)

    def reuse_weight(self, step: int, mixing) -> float:
        """lam at a non-keyframe step: 0 where the step is N (no call), else the mixing's."""
        return 0.0 if self.no_call(step) else mixing.lam(step, self.num_steps)

    def makes_call(self, step: int, mixing) -> bool:
        """Does the network run at this step (a keyframe, or reuse with lam > 0)?"""
        return self.is_keyframe(step) or self.reuse_weight(step, mixing) > 0.0

    def step_kind(self, step: int, mixing) -> str:
        """The step's kind: "keyframe", "reuse" (F/S/R blocks, mixed with lam > 0) or "no call"."""
        if self.is_keyframe(step):
            return "keyframe"
        return "reuse" if self.reuse_weight(step, mixing) > 0.0 else "no call"

    def block_modes(self, block_index: int) -> set[str]:
        """The modes a block takes over the run (what accelerate() must install for it)."""
        return {self.mode(s, block_index) for s in range(self.num_steps)}

    @property
    def keyframes(self) -> list[int]:
        return [i for i in range(self.num_steps) if self.is_keyframe(i)]

    def check_blocks(self, available: Sequence[str]) -> None:
        """Raise ValueError if this per-block policy names blocks the model does not have."""
        if self.blocks is None:
            return
        if tuple(available) != self.blocks:
            unknown = [b for b in self.blocks if b not in available]
            raise ValueError(f"policy blocks do not match the model ({len(self.blocks)} named, "
                             f"the model has {len(available)}): unknown {unknown}; the model's "
                             f"reusable blocks are, in order: {', '.join(available)}")

    # -- text: one row per block (the app's policy editor) ------------------------------
    def to_text(self, blocks: Sequence[str] | None = None, group: int = 10) -> str:
        """One line per block, `NAME  MODES`, the modes in groups of `group` steps. A policy
        without block names is laid out over `blocks` (the model's, `block_depths(pipe)`)."""
        names = self.blocks or (tuple(blocks) if blocks else None)
        if names is None:
            raise ValueError("a policy without block names needs the model's blocks to be laid out")
        if self.blocks is not None and blocks is not None:
            self.check_blocks(blocks)
        width = max(4, *(len(n) for n in names), 7 if self.uncond else 0)  # "# step", "@uncond"
        header = " ".join(f"{s:<{group}d}" for s in range(0, self.num_steps, group)).rstrip()
        lines = [f"# {'step':<{width - 2}}  {header}", f"# modes: {Mode.legend()} (whole step); "
                 f"{self.num_steps} steps, step 0 all K"]
        if self.forecast:
            lines.append(f"@forecast {self.forecast}")
        if self.uncond:
            lines.append(f"{'@uncond':<{width}}  {_grouped(self.uncond, group)}")
        for b, name in enumerate(names):
            modes = "".join(self.mode(s, b) for s in range(self.num_steps))
            lines.append(f"{name:<{width}}  {_grouped(modes, group)}")
        return "\n".join(lines)

    @classmethod
    def from_text(cls, text: str) -> "KeyframePolicy":
        """Parse `to_text`'s format: lines `NAME MODES`; spaces inside MODES and lines starting
        with '#' are ignored; every block must cover the same steps; a line `@forecast step`
        (or `logsnr`) sets the forecast, a line `@uncond KRKR...` (one K or R per step) the
        unconditional CFG half's schedule."""
        if not isinstance(text, str):
            raise ValueError(f"a policy text must be a string, got {_kind(text)}")
        columns: dict[str, str] = {}
        forecast = uncond = None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                key, _, value = line.partition(" ")
                if key == "@forecast" and value.strip() in FORECASTS:
                    forecast = value.strip()
                elif key == "@uncond" and value.split():
                    uncond = "".join(value.split()).upper()
                else:
                    raise ValueError(f"line {number}: {line[:60]!r}; the directives are "
                                     f"`@forecast step`, `@forecast logsnr` and `@uncond KRKR...` "
                                     f"(one K or R per step)")
                continue
            name, _, rest = line.partition(" ")
            modes = "".join(rest.split()).upper()
            if not modes:
                raise ValueError(f"line {number}: {name!r} has no modes; expected `NAME KFSK...`")
            bad = sorted(set(modes) - set(MODES))
            if bad:
                raise ValueError(f"line {number} ({name}): unknown mode(s) {', '.join(bad)}; use "
                                 + Mode.legend(parenthesised=True))
            if name in columns:
                raise ValueError(f"line {number}: block {name!r} appears twice")
            columns[name] = modes
        if not columns:
            raise ValueError("the policy text has no block lines")
        lengths = {name: len(m) for name, m in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError("every block must cover the same number of steps; got "
                             + ", ".join(f"{n}: {k}" for n, k in lengths.items()))
        policy = cls.per_block(list(columns), columns)
        return dataclasses.replace(policy, forecast=forecast, uncond=uncond)

    def with_forecast(self, forecast: str | None) -> "KeyframePolicy":
        """The same schedule, its reuse steps forecasting (`forecast`="step"/"logsnr") or holding (None)."""
        return dataclasses.replace(self, forecast=forecast)

    def with_uncond(self, uncond: str | None) -> "KeyframePolicy":
        """The same schedule with the unconditional CFG half's per-step K/R string (None: always K)."""
        return dataclasses.replace(self, uncond=uncond)

    def with_uncond_every(self, interval: int, start: int = 0) -> "KeyframePolicy":
        """The unconditional CFG half computes at steps before `start` and every `interval`
        steps from it, and reuses its guidance difference in between (uncond R)."""
        interval, start = _count(interval, "interval"), _count(start, "start", low=0)
        return self.with_uncond("".join(Mode.KEYFRAME if s < start or (s - start) % interval == 0 else Mode.RESIDUAL
                                        for s in range(self.num_steps)))

    # -- JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schedule": list(self.schedule), "blocks": list(self.blocks) if self.blocks else None} | (
            {"forecast": self.forecast} if self.forecast else {}) | (
            {"uncond": self.uncond} if self.uncond else {})

    def to_json(self, path: str | None = None, **metadata) -> str:
        text = json.dumps(self.to_dict() | ({"meta": metadata} if metadata else {}), indent=1)
        if path:  # atomically: an interrupted write leaves no partial policy file
            with open(path + ".partial", "w") as f:
                f.write(text + "\n")
            os.replace(path + ".partial", path)
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "KeyframePolicy":
        """From `to_dict`'s form: {"schedule": [rows], "blocks": [names] or null, "meta": {...}}."""
        if not isinstance(data, dict) or "schedule" not in data:
            raise ValueError(f"a policy JSON must be an object with a 'schedule' list of mode "
                             f"strings, e.g. {{\"schedule\": [\"K\", \"F\"]}}; got "
                             f"{_kind(data)}" + ("" if not isinstance(data, dict) else
                                                  f" with keys {sorted(map(str, data))}"))
        unknown = sorted(map(str, set(data) - set(_JSON_KEYS)))
        if unknown:
            raise ValueError(f"unknown policy JSON key(s) {unknown}; allowed: {', '.join(_JSON_KEYS)}")
        schedule, blocks = data["schedule"], data.get("blocks")
        if not isinstance(schedule, list):
            raise ValueError(f"policy JSON 'schedule' must be a list of mode strings, one per "
                             f"step, e.g. [\"KK\", \"FS\"]; got {_kind(schedule)}")
        if blocks is not None and not isinstance(blocks, list):
            raise ValueError(f"policy JSON 'blocks' must be null or a list of block names, "
                             f"got {_kind(blocks)}")
        return cls(tuple(schedule), tuple(blocks) if blocks else None, data.get("forecast"),
                   data.get("uncond"))

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "KeyframePolicy":
        """From JSON text (starting with '{') or the path of a JSON file (`to_json`'s output)."""
        if isinstance(text_or_path, os.PathLike):
            text_or_path = os.fspath(text_or_path)
        if not isinstance(text_or_path, str):
            raise ValueError(f"a policy JSON must be given as text or a file path, got "
                             f"{_kind(text_or_path)}")
        if text_or_path.lstrip().startswith(("{", "[")):
            return cls.from_dict(_loads(text_or_path, "the policy JSON text"))
        return cls.from_dict(_loads(_read_policy_file(text_or_path), repr(text_or_path)))

    @classmethod
    def parse(cls, spec: str, num_steps: int,
              depths: dict[str, int] | None = None) -> "KeyframePolicy | AdaptivePolicy":
        """A policy spec ("uniform:2", "deep:3", "adaptive:0.1", a JSON file, options such as
        "+forecast"): a thin alias of `frdiff.specs.parse_policy(spec, num_steps,
        SpecContext(blocks=depths))`, whose table of prefixes says what each takes (`deep:`
        needs the model's block `depths`)."""
        if _spec_parser is None:  # frdiff/__init__.py imports frdiff.specs, which sets it
            raise RuntimeError("frdiff.specs is not imported; import frdiff first")
        return _spec_parser(spec, num_steps, depths)

    def summary(self) -> str:
        return " ".join(self.schedule) if self.blocks is None else "\n".join(self.schedule)


_JSON_KEYS = ("schedule", "blocks", "forecast", "uncond", "meta")
# `KeyframePolicy.parse`'s parser: frdiff.specs sits above this module (its prefixes build these
# policies), so it cannot be imported from here without a cycle; it installs itself on import
_spec_parser: Callable[[str, int, dict | None], "KeyframePolicy | AdaptivePolicy"] | None = None


def use_spec_parser(parser: Callable[[str, int, dict | None], "KeyframePolicy | AdaptivePolicy"]) -> None:
    """Make `parser(spec, num_steps, depths)` the one `KeyframePolicy.parse` delegates to."""
    global _spec_parser
    _spec_parser = parser


def _strings(value, name: str, what: str, item: str, item_what: str) -> tuple[str, ...]:
    """`value` as a tuple of strings; else a ValueError saying what was expected."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list or tuple of {what}, got {_kind(value)}")
    items = tuple(value)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise ValueError(f"{item} {i}: expected a {item_what}, got {_kind(v)}")
    return items


def _grouped(letters: str, group: int) -> str:
    """One letter per step, in groups of `group` steps (the text grid's columns)."""
    return " ".join(letters[i:i + group] for i in range(0, len(letters), group))


def _count(value, name: str, low: int = 1) -> int:
    """`value` if it is a whole number >= `low` (not a bool); else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {_kind(value)}")
    return value


def _kind(value) -> str:
    """A short description of a bad value for error messages: its type and a clipped repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _loads(text: str, source: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{source} is not valid JSON ({e}); expected an object like "
                         f'{{"schedule": ["K", "F"], "blocks": null}}') from None


def _read_policy_file(path: str) -> str:
    """The text of a policy file; ValueError if `path` is not a readable regular file."""
    if not os.path.exists(path):
        raise ValueError(f"{path!r} is neither policy JSON text (an object starting with '{{') "
                         f"nor the path of an existing policy JSON file")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory; expected a policy JSON file")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file; expected a policy JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read policy file {path!r}: {e}") from None
