"""Flow matching in frdiff's maths: the "flow" prediction type, the noise-schedule adapter,
MACs of joint attention counted against a hand count, and the errors before any step runs."""

import pytest
import torch
from diffusers import (DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler,
                       FlowMatchHeunDiscreteScheduler, FluxTransformer2DModel,
                       UniPCMultistepScheduler)

from frdiff import KeyframePolicy, ScoreMixing, accelerate
from frdiff.cost import CallCosts, MacCounter
from frdiff.mixing import eps_of, from_prediction, output_for_x0, to_prediction, x0_of
from frdiff.noise import FLOW, FlowSchedule, is_flow, noise_schedule
from frdiff.targets import find_blocks


def test_flow_prediction_splits_exactly():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 8, generator=g), torch.randn(3, 4, 8, generator=g)
    s = torch.tensor([0.9, 0.5, 0.1]).view(3, 1, 1)
    x, v = (1 - s) * x0 + s * eps, eps - x0
    p = to_prediction(v, x, 1 - s, s, FLOW)
    torch.testing.assert_close(p.eps, eps)
    torch.testing.assert_close(p.x0, x0)
    torch.testing.assert_close(from_prediction(p, 1 - s, s, FLOW), v)
    torch.testing.assert_close(eps_of(v, x, 1 - s, s, FLOW), eps)
    torch.testing.assert_close(x0_of(v, x, 1 - s, s, FLOW), x0)
    torch.testing.assert_close(output_for_x0(x0, x, 1 - s, s, FLOW), v)


@pytest.mark.parametrize("make", [
    lambda: FlowMatchEulerDiscreteScheduler(shift=3.0),
    lambda: FlowMatchHeunDiscreteScheduler(),
    lambda: UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
    lambda: DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
])
def test_flow_schedulers_are_read_from_their_sigmas(make):
    scheduler = make()
    assert is_flow(scheduler)
    adapter = noise_schedule(scheduler)
    assert isinstance(adapter, FlowSchedule) and adapter.prediction_type == FLOW
    scheduler.set_timesteps(6)
    assert adapter.index() == 0
    scheduler.set_begin_index(2)  # img2img: the run starts part-way
    assert adapter.index() == 2
    x = torch.zeros(2, 4, 3)
    sig = __import__("inspect").signature(lambda hidden_states, timestep=None: None)
    _, alpha, sigma = adapter.point(sig, (x,), {"timestep": scheduler.timesteps[2]})
    assert float(sigma[0, 0, 0]) == pytest.approx(float(scheduler.sigmas[2]))
    assert float(alpha[1, 0, 0]) == pytest.approx(1 - float(scheduler.sigmas[2]))


def test_dynamic_shifting_and_custom_sigmas_are_what_the_scheduler_steps_with():
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    sigmas = [1.0, 0.8, 0.55, 0.3]
    scheduler.set_timesteps(sigmas=sigmas, mu=1.15)  # as FluxPipeline calls it
    adapter = noise_schedule(scheduler)
    x = torch.zeros(1, 2)
    sig = __import__("inspect").signature(lambda hidden_states: None)
    for i in range(4):
        scheduler._step_index = i
        _, _, sigma = adapter.point(sig, (x,), {})
        assert float(sigma.flatten()[0]) == pytest.approx(float(scheduler.sigmas[i]))
    assert float(scheduler.sigmas[1]) != pytest.approx(0.8)  # mu shifted them


def tiny_flux(**kw):
    torch.manual_seed(0)
    return FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2,
                                  attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                  pooled_projection_dim=16, axes_dims_rope=(2, 2, 4), **kw).eval()


def flux_inputs(batch=2, image=12, text=5):
    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(batch, image, 16, generator=g),
                encoder_hidden_states=torch.randn(batch, text, 16, generator=g),
                pooled_projections=torch.randn(batch, 16, generator=g),
                timestep=torch.full((batch,), 0.5), img_ids=torch.zeros(image, 3),
                txt_ids=torch.zeros(text, 3), return_dict=False)


def test_flux_macs_equal_a_hand_count():
    """Joint attention over image + text tokens, single-stream blocks on their concatenation."""
    model, kw = tiny_flux(), flux_inputs()
    B, I, T, D, C, J, P = 2, 12, 5, 16, 16, 16, 16
    with torch.no_grad(), MacCounter(model) as counter:
        model(**kw)
    dual = (2 * 6 * D * D * B  # norm1 and norm1_context: adaLN linear on the embedding
            + 3 * B * (I + T) * D * D  # q, k, v of both streams
            + 2 * B * (I + T) ** 2 * D  # QK^T and AV over the joint sequence
            + B * (I + T) * D * D  # to_out and to_add_out
            + 8 * B * (I + T) * D * D)  # ff and ff_context (D -> 4D -> D)
    single = (3 * D * D * B + B * (I + T) * D * 4 * D + 3 * B * (I + T) * D * D
              + 2 * B * (I + T) ** 2 * D + B * (I + T) * 5 * D * D)
    embed = B * I * C * D + B * T * J * D + B * (256 * D + D * D) + B * (P * D + D * D)
    head = B * 2 * D * D + B * I * D * C
    blocks = find_blocks(model)
    costs = CallCosts.count(counter, blocks)
    assert costs.block == [dual, dual, single, single]
    assert costs.total == embed + 2 * dual + 2 * single + head
    # FR saves the attention and MLP outputs of both streams: all but the adaLN linears; in a
    # single-stream block the fused projection and what feeds it (attention, MLP) too
    assert costs.fr_saving[0] == dual - 2 * 6 * D * D * B
    assert costs.fr_saving[2] == single - 3 * D * D * B


def test_a_transformer_without_known_blocks_is_refused_by_name():
    class Opaque(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4)])

        def forward(self, hidden_states, timestep=None):
            return hidden_states

    with pytest.raises(ValueError, match="Opaque has no module frdiff can reuse.*FluxTransformerBlock"):
        with accelerate(Opaque(), KeyframePolicy.uniform(4, 2), scheduler=FlowMatchEulerDiscreteScheduler()):
            pass


def test_a_policy_for_other_blocks_lists_the_expected_ones():
    model = tiny_flux()
    policy = KeyframePolicy.per_block(["transformer_blocks.0"], {"transformer_blocks.0": "KFKF"})
    with pytest.raises(ValueError, match="the model has 4.*single_transformer_blocks.1"):
        with accelerate(model, policy, scheduler=FlowMatchEulerDiscreteScheduler()):
            pass


def test_a_prediction_type_frdiff_cannot_split_is_refused_before_any_step():
    scheduler = UniPCMultistepScheduler(prediction_type="sample")
    scheduler.register_to_config(prediction_type="weird")
    model = tiny_flux()
    with pytest.raises(ValueError, match="prediction_type 'weird'"):
        with accelerate(model, KeyframePolicy.uniform(4, 2), ScoreMixing(), scheduler=scheduler):
            pass
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_reduced_nfe_on_a_euler_flow_is_one_larger_euler_step():
    """Holding v over a skipped step lands where Euler on the keyframe sigmas does."""
    model, kw = tiny_flux(), flux_inputs(batch=1)
    x_init = kw.pop("hidden_states")

    def euler(scheduler, accelerated: bool, sigmas=None):
        scheduler.set_timesteps(sigmas=sigmas) if sigmas else scheduler.set_timesteps(6)
        x = x_init.clone()
        for t in scheduler.timesteps:
            v = model(hidden_states=x, **{**kw, "timestep": (t / 1000).expand(1)})[0]
            x = scheduler.step(v, t, x).prev_sample
        return x

    full = FlowMatchEulerDiscreteScheduler()
    full.set_timesteps(6)
    keyframe_sigmas = full.sigmas[:-1:2].tolist()
    scheduler = FlowMatchEulerDiscreteScheduler()
    with torch.no_grad():
        with accelerate(model, KeyframePolicy.uniform(6, 2), ScoreMixing.reduced_nfe(), scheduler=scheduler) as run:
            fast = euler(scheduler, True)
        coarse = euler(FlowMatchEulerDiscreteScheduler(), False, sigmas=keyframe_sigmas)
    assert run.stats.network_calls == 3 and run.stats.network_calls_skipped == 3
    torch.testing.assert_close(fast, coarse, atol=1e-5, rtol=1e-5)
