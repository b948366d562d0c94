"""frdiff.peers: DeepCache and diffusers' MagCache / FirstBlockCache, installed and removed exactly."""

import sys

import pytest
import torch
from conftest import LABELS, tiny_dit, tiny_unet

from frdiff import peers
from frdiff.cost import MacCounter
from frdiff.glyphs import GlyphPipeline
from frdiff.glyphs.models import build_scheduler
from frdiff.peers import diffusers_hooks
from frdiff.targets import denoiser_of

N = 6
CALL = {"class_labels": ["A", "7"], "num_inference_steps": N, "output_type": "pt"}


def _pipe(model) -> GlyphPipeline:
    pipe = GlyphPipeline.from_model(model, build_scheduler(), labels=LABELS)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def unet_pipe() -> GlyphPipeline:
    return _pipe(tiny_unet())


@pytest.fixture
def dit_pipe() -> GlyphPipeline:
    return _pipe(tiny_dit())


def run(pipe) -> torch.Tensor:
    return pipe(generator=torch.Generator().manual_seed(0), **CALL).images


def _attrs(pipe) -> dict:
    """What the peers replace: modules' own forward / hook registry, the scheduler's methods."""
    names = ("forward", "_diffusers_hook", "set_timesteps", "step")
    return {(id(o), n): id(vars(o)[n]) for o in [*denoiser_of(pipe).modules(), pipe.scheduler]
            for n in names if n in vars(o)}


def _ratios(pipe) -> tuple[float, ...]:
    return peers.calibrate_mag_cache(pipe, N, **{k: v for k, v in CALL.items() if k != "num_inference_steps"},
                                     generator=torch.Generator().manual_seed(0))


HOOKS = {
    "FirstBlockCache": lambda pipe, trivial: peers.first_block_cache(pipe, 0.0 if trivial else 10.0),
    "MagCache": lambda pipe, trivial: peers.mag_cache(pipe, _ratios(pipe), threshold=10.0,
                                                      max_skip_steps=0 if trivial else 3),
    # interval 1: every step computes; 2: every other one predicts each block's output
    "TaylorSeer": lambda pipe, trivial: peers.taylorseer_cache(pipe, 1 if trivial else 2, 1, 1),
    "PyramidAttentionBroadcast": lambda pipe, trivial: peers.pyramid_attention_broadcast(
        pipe, 1 if trivial else 2, (0, 1000)),
    "DBCache": lambda pipe, trivial: peers.dbcache(pipe, 0.0 if trivial else 10.0, warmup=1),
    "DBCache + TaylorSeer": lambda pipe, trivial: peers.dbcache(pipe, 0.0 if trivial else 10.0, warmup=1,
                                                                taylorseer_order=1),
}


def _layout(pipe) -> tuple:
    """What cache-dit also touches: the pipeline class, the submodules and their order."""
    return (dict(vars(type(pipe))), list(pipe.transformer.state_dict()), list(pipe.transformer.named_modules()),
            sorted(vars(pipe)), sorted(vars(pipe.transformer)))


@pytest.mark.parametrize("name", HOOKS)
def test_hooks_change_the_output_and_removal_is_exact(dit_pipe, name):
    base, before, layout = run(dit_pipe), _attrs(dit_pipe), _layout(dit_pipe)
    context = HOOKS[name](dit_pipe, trivial=False)  # MagCache calibrates here
    assert _attrs(dit_pipe) == before  # calibration left nothing behind
    with context:
        assert _attrs(dit_pipe) != before or _layout(dit_pipe) != layout  # really hooked
        out, again = run(dit_pipe), run(dit_pipe)
    assert torch.equal(out, again)  # the state is reset per pipeline call: nothing leaks
    diff = (out - base).abs()
    assert diff.max() > 1e-4 and diff.mean() < 0.2
    assert _attrs(dit_pipe) == before and _layout(dit_pipe) == layout
    assert torch.equal(run(dit_pipe), base)


@pytest.mark.parametrize("name", HOOKS)
def test_trivial_setting_is_full_compute(dit_pipe, name):
    base = run(dit_pipe)
    with HOOKS[name](dit_pipe, trivial=True):
        assert torch.equal(run(dit_pipe), base)


@pytest.mark.parametrize("name", HOOKS)
def test_exception_inside_restores_everything(dit_pipe, name):
    base, before, layout = run(dit_pipe), _attrs(dit_pipe), _layout(dit_pipe)
    with pytest.raises(KeyError), HOOKS[name](dit_pipe, trivial=False):
        run(dit_pipe)
        raise KeyError("boom")
    assert _attrs(dit_pipe) == before and _layout(dit_pipe) == layout and torch.equal(run(dit_pipe), base)


def test_mag_cache_calibration_and_step_count(dit_pipe):
    ratios = _ratios(dit_pipe)
    assert len(ratios) == N and ratios[0] == 1.0 and all(r > 0 for r in ratios)
    assert _ratios(dit_pipe) == ratios  # the same call calibrates the same
    with peers.mag_cache(dit_pipe, ratios, threshold=10.0):
        first = run(dit_pipe)
        with pytest.raises(ValueError, match=f"set up for {N} steps but the sampler runs 4"):
            dit_pipe(["A"], num_inference_steps=4, output_type="pt")
        assert torch.equal(run(dit_pipe), first)  # the failed call left no state behind


@pytest.mark.parametrize("make", [lambda p: peers.first_block_cache(p), lambda p: peers.mag_cache(p, [1.0] * N),
                                  lambda p: peers.taylorseer_cache(p), lambda p: peers.dbcache(p)])
def test_hooks_reject_a_unet(unet_pipe, make):
    before = _attrs(unet_pipe)
    match = "(applies to transformer denoisers|wired here for DiT).*this pipeline's denoiser is a UNet2DModel"
    with pytest.raises(ValueError, match=match), make(unet_pipe):
        pass
    assert _attrs(unet_pipe) == before


def test_mag_cache_calibration_rejects_a_unet(unet_pipe):
    with pytest.raises(ValueError, match="applies to transformer denoisers"):
        peers.calibrate_mag_cache(unet_pipe, N, class_labels=["A"])


def test_pab_runs_on_the_unet_attention_and_counts_what_it_skipped(unet_pipe):
    base, before = run(unet_pipe), _attrs(unet_pipe)
    full = peers.counted_macs(unet_pipe, None, generator=torch.Generator().manual_seed(0), **CALL)[1]
    with peers.pyramid_attention_broadcast(unet_pipe, 2, (0, 1000)):
        out = run(unet_pipe)
        assert torch.equal(run(unet_pipe), out)  # its per-hook state is reset per call
    assert not torch.equal(out, base) and _attrs(unet_pipe) == before and torch.equal(run(unet_pipe), base)
    skipped = peers.counted_macs(unet_pipe, peers.pyramid_attention_broadcast(unet_pipe, 2, (0, 1000)),
                                 generator=torch.Generator().manual_seed(0), **CALL)[1]
    assert skipped < full


def test_dbcache_refuses_a_second_pipeline_of_the_class(dit_pipe):
    other = _pipe(tiny_dit())
    with peers.dbcache(dit_pipe):
        with pytest.raises(ValueError, match="already enabled on a GlyphPipeline"), peers.dbcache(other):
            pass
    with peers.dbcache(other):  # the first one left: the class is free again
        run(other)
    with pytest.raises(ValueError, match=r"front \+ back blocks \(2 \+ 1\) exceed this DiT\w*'s 2 blocks"), \
            peers.dbcache(dit_pipe, front=2, back=1):
        pass


def test_deepcache_rejects_a_dit(dit_pipe):
    match = "DeepCache applies to UNet pipelines.*this pipeline's denoiser is a DiTTransformer2DModel"
    with pytest.raises(ValueError, match=match), peers.deepcache(dit_pipe, 3):
        pass


@pytest.mark.parametrize("bad, match", [
    (lambda p: peers.first_block_cache(p, -0.1), "threshold must be a number >= 0"),
    (lambda p: peers.mag_cache(p, []), "mag_ratios must be a non-empty"),
    (lambda p: peers.mag_cache(p, [1.0, float("nan")]), "mag_ratios"),
    (lambda p: peers.mag_cache(p, [1.0] * N, max_skip_steps=1.5), "max_skip_steps must be an integer"),
    (lambda p: peers.mag_cache(p, [1.0] * N, retention_ratio=2), r"retention_ratio must be a number in \[0"),
    (lambda p: peers.taylorseer_cache(p, 0), "cache_interval must be an integer >= 1"),
    (lambda p: peers.pyramid_attention_broadcast(p, 2, (800, 100)), "timestep_range end must be a number >= 800"),
    (lambda p: peers.dbcache(p, -1.0), "DBCache threshold must be a number >= 0"),
])
def test_settings_are_validated(dit_pipe, bad, match):
    with pytest.raises(ValueError, match=match), bad(dit_pipe):
        pass


def test_peer_methods_per_model_class(unet_pipe, dit_pipe, monkeypatch):
    on_unet, on_dit = peers.peer_methods(unet_pipe), peers.peer_methods(dit_pipe)
    assert list(on_unet) == ["DeepCache (interval 3)"] and set(on_dit) == {"MagCache", "FirstBlockCache"}
    assert all(m.available and not m.reason for m in [*on_unet.values(), *on_dit.values()])
    calibrations = []
    calibrate = peers.calibrate_mag_cache
    monkeypatch.setattr(diffusers_hooks, "calibrate_mag_cache",  # where MagCache's factory calls it
                        lambda *a, **k: calibrations.append(1) or calibrate(*a, **k))
    base = run(dit_pipe)
    for labels in (["A", "7"], ["A", "7"], ["K"]):  # calibrated once per distinct call
        with on_dit["MagCache"](N, class_labels=labels, generator=torch.Generator().manual_seed(0)):
            run(dit_pipe)
    assert len(calibrations) == 2
    with on_dit["FirstBlockCache"](N), on_unet["DeepCache (interval 3)"](N):
        run(unet_pipe)
    assert torch.equal(run(dit_pipe), base)


def test_unavailable_packages_are_reported_not_raised(monkeypatch, unet_pipe, dit_pipe):
    monkeypatch.setitem(sys.modules, "DeepCache", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "diffusers.hooks.mag_cache", None)
    deepcache = peers.peer_methods(unet_pipe)["DeepCache (interval 3)"]
    on_dit = peers.peer_methods(dit_pipe)
    assert not deepcache.available and "DeepCache is unavailable" in deepcache.reason
    assert not on_dit["MagCache"].available and "diffusers.hooks.mag_cache" in on_dit["MagCache"].reason
    assert on_dit["FirstBlockCache"].available
    with pytest.raises(peers.PeerUnavailable, match="DeepCache"):
        deepcache(N)
    with pytest.raises(peers.PeerUnavailable), peers.deepcache(unet_pipe):
        pass
    assert isinstance(peers.PeerUnavailable("x"), ImportError)


def test_counted_macs_follow_what_ran(unet_pipe, dit_pipe):
    def macs(pipe, context=None) -> int:
        return peers.counted_macs(pipe, context, generator=torch.Generator().manual_seed(0), **CALL)[1]

    unet_full, dit_full = macs(unet_pipe), macs(dit_pipe)
    assert macs(unet_pipe, peers.deepcache(unet_pipe, 1)) == unet_full
    assert 1.0 < unet_full / macs(unet_pipe, peers.deepcache(unet_pipe, 3)) < 3.0
    assert macs(dit_pipe, peers.first_block_cache(dit_pipe, 0.0)) == dit_full
    # a skipped block runs no conv/linear/attention: at threshold 10 every step after the first
    # skips block 1 (of 2), so exactly N - 1 of its calls are missing from the count
    with MacCounter(dit_pipe.transformer) as full:
        run(dit_pipe)
    block = full.total(dit_pipe.transformer.transformer_blocks[1]) // N
    assert macs(dit_pipe, peers.first_block_cache(dit_pipe, 10.0)) == dit_full - (N - 1) * block
    ratios = _ratios(dit_pipe)
    speedup = peers.counted_speedup(dit_pipe, lambda: peers.mag_cache(dit_pipe, ratios, threshold=10.0), **CALL)
    assert 1.0 < speedup < N


def test_mac_counter_skips_attention_a_cache_returned(unet_pipe):
    # DeepCache wraps UNet2DModel's Attention modules: a cached step must not charge QK^T / AV
    attn = unet_pipe.unet.down_blocks[1].attentions[0]
    with MacCounter(unet_pipe.unet) as full:
        run(unet_pipe)
    with peers.deepcache(unet_pipe, interval=2, branch_id=0), MacCounter(unet_pipe.unet) as cached:
        run(unet_pipe)
    per_call = full.macs[id(attn)] / N
    assert cached.macs[id(attn)] == per_call * N / 2  # ran at steps 0, 2, 4 only
    assert cached.macs[id(attn.to_q)] * 2 == full.macs[id(attn.to_q)]


def test_the_sweep_and_peer_methods_read_the_one_registry(unet_pipe, dit_pipe):
    from frdiff.glyphs import peer_rows

    assert set(peer_rows.SETTINGS) == set(peers.REGISTRY)  # every registered peer has sweep settings
    for name, peer in peers.REGISTRY.items():
        assert peer_rows.PEERS[name].peer is peer and peer_rows.PEERS[name].applies(dit_pipe, "ddim") == \
            peer.unfit(dit_pipe)
    assert {n for n, p in peer_rows.PEERS.items() if p.peer is None} == {"fewer-steps", "dpmsolver"}
    offered = [p for p in peers.REGISTRY.values() if p.default is not None and p.offered]
    on_both = {**peers.peer_methods(unet_pipe), **peers.peer_methods(dit_pipe)}
    assert [m.package for m in on_both.values()] == [p.package for p in offered]


# -- the flow pipelines (FLUX, SD3, Wan) through the same registry -------------------------------
def _flow(name):
    from flow_pipelines import BUILDERS

    pipe, kwargs = BUILDERS[name]()
    pipe.set_progress_bar_config(disable=True)
    return pipe, kwargs


FLOW = ("firstblockcache", "magcache", "taylorseer", "dbcache")


def test_mag_cache_calibrates_per_cfg_branch_after_a_plain_call():
    """Wan calls its transformer twice a step in contexts "cond" / "uncond". A plain call made
    first leaves diffusers' registry walk cached without the peer's hooks; had they not been
    re-walked, both branches would share one state (8 calls for 4 steps: 3 ratios, not 4)."""
    pipe, kwargs = _flow("wan")
    pipe(num_inference_steps=4, **kwargs)
    ratios = peers.calibrate_mag_cache(pipe, 4, **kwargs)
    assert len(ratios) == 4 and ratios[0] == 1.0
    with peers.mag_cache(pipe, ratios, threshold=10.0) as settings:
        pipe(num_inference_steps=4, **kwargs)
    assert settings.steps == 4


def test_named_peers_come_back_with_why_they_do_not_apply():
    sd3, _ = _flow("sd3")
    methods = peers.peer_methods(sd3, peers=FLOW)
    assert set(methods) == {"FirstBlockCache", "MagCache", "TaylorSeer", "cache-dit DBCache"}
    fbc = methods["FirstBlockCache"]
    assert not fbc.available and "context_pre_only" in fbc.reason
    assert "FirstBlockCache" not in peers.peer_methods(sd3)  # unasked, what does not apply is left out
    with pytest.raises(ValueError, match="context_pre_only"), peers.first_block_cache(sd3):
        pass
    with pytest.raises(ValueError, match="unknown peer.*'fbc'.*knows"):
        peers.peer_methods(sd3, peers=("fbc",))
    with pytest.raises(ValueError, match="unknown peer.*'dbcach'"):
        peers.peer_methods(sd3, options={"dbcach": {}})


def test_taylorseer_on_frdiffs_units_and_dbcache_through_cache_dits_adapter():
    pytest.importorskip("cache_dit")
    pipe, kwargs = _flow("flux")
    methods = peers.peer_methods(pipe, peers=FLOW, options={"taylorseer": {"identifiers": "units"},
                                                            "dbcache": {"front": 1, "warmup": 1,
                                                                        "threshold": 10.0}})
    assert all(m.available for m in methods.values()), {n: m.reason for n, m in methods.items()}
    assert "predicting the units" in methods["TaylorSeer"].setting
    assert "threshold 10.0, F1B0, warmup 1" in methods["cache-dit DBCache"].setting

    def sample():
        return pipe(num_inference_steps=6, generator=torch.Generator().manual_seed(0), **kwargs).images

    base, attrs, layout = sample(), _attrs(pipe), _layout(pipe)
    for name in ("TaylorSeer", "cache-dit DBCache"):
        with methods[name](6):
            out = sample()
        assert not torch.equal(out, base), name  # it skipped something
        assert _attrs(pipe) == attrs and _layout(pipe) == layout, name  # and put everything back
        assert torch.equal(sample(), base), name
    with pytest.raises(ValueError, match="'blocks' or 'units'"), peers.taylorseer_cache(pipe, identifiers="unit"):
        pass


def test_sea_cache_is_refused_where_diffusers_would_run_it_fail_open(dit_pipe):
    """SeaCache reads a flow sigma in [0, 1] each step; on DDIM diffusers warns and computes
    everything, a row that would pass for a cache that skipped nothing."""
    reason = peers.sea_cache_unfit(dit_pipe)
    assert "fail-open" in reason and "DDIMScheduler" in reason
    with pytest.raises(ValueError, match="fail-open"), peers.sea_cache(dit_pipe):
        pass
    flux, _ = _flow("flux")
    assert peers.sea_cache_unfit(flux) == ""
