"""Hub models in the app: the allow-list, the reasons they are not offered, and the whole path
(load, prompt, full compute beside FRDiff) on tiny SD / PixArt / DiT pipelines built from configs,
and on tiny FLUX.1 (schnell and dev), SD3 and Wan 2.1 pipelines, with real tokenizers and text
encoders, through the loader a hub model goes through."""

import dataclasses
import socket

import pytest
import torch
from stock_pipelines import BUILDERS

from app import hub


@pytest.fixture
def offered(monkeypatch):
    monkeypatch.setattr(hub, "unavailable", lambda: "")
    monkeypatch.setattr(hub, "_loaded", {})
    monkeypatch.setattr(hub, "_locks", {})


def char_tokenizer(max_length: int):
    """A real tokenizer, tiny: one token per character, end-of-text and padding tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {chr(c): 3 + i for i, c in enumerate(range(32, 127))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_length), len(vocab)


FLOW = {"FluxPipeline", "StableDiffusion3Pipeline", "WanPipeline"}


def flow_vae(latent_channels=4):
    """A tiny KL VAE with FLUX/SD3's 8x scale (four levels) and their shift factor."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8,) * 4, latent_channels=latent_channels, norm_num_groups=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         shift_factor=0.1, scaling_factor=1.0)


def t5(d_model=16):
    from transformers import T5Config, T5EncoderModel

    tokenizer, size = char_tokenizer(512)
    return tokenizer, T5EncoderModel(T5Config(vocab_size=size, d_model=d_model, d_ff=32, num_layers=1, num_heads=2,
                                              d_kv=8))


def clip(hidden, projection=None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, size = char_tokenizer(77)
    config = CLIPTextConfig(vocab_size=size, hidden_size=hidden, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=projection or hidden)
    return tokenizer, (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def tiny_flow(cls, model_id):
    """Tiny FLUX (schnell: no guidance input; dev: distilled guidance), SD3 and Wan pipelines."""
    from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel,
                           SD3Transformer2DModel, UniPCMultistepScheduler, WanTransformer3DModel)
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    if cls.__name__ == "FluxPipeline":
        model = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2,
                                       attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                       pooled_projection_dim=16, axes_dims_rope=(2, 2, 4),
                                       guidance_embeds=model_id.endswith("dev"))
        (tokenizer, encoder), (tokenizer_2, encoder_2) = clip(16), t5(16)
        return cls(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=flow_vae(4), text_encoder=encoder,
                   tokenizer=tokenizer, text_encoder_2=encoder_2, tokenizer_2=tokenizer_2, transformer=model)
    if cls.__name__ == "StableDiffusion3Pipeline":  # two CLIPs (8 wide, pooled 8 + 8) padded to T5's 16
        model = SD3Transformer2DModel(sample_size=4, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                      num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                      pooled_projection_dim=16, out_channels=4, pos_embed_max_size=8,
                                      qk_norm="rms_norm", dual_attention_layers=(0,))
        (tokenizer, encoder), (tokenizer_2, encoder_2), (tokenizer_3, encoder_3) = clip(8, 8), clip(8, 8), t5(16)
        return cls(transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=flow_vae(4),
                   text_encoder=encoder, tokenizer=tokenizer, text_encoder_2=encoder_2, tokenizer_2=tokenizer_2,
                   text_encoder_3=encoder_3, tokenizer_3=tokenizer_3)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=16,
                                  out_channels=16, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2,
                                  rope_max_seq_len=32)
    tokenizer, size = char_tokenizer(226)
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=size, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return cls(tokenizer=tokenizer, text_encoder=encoder, transformer=model, vae=vae, scheduler=scheduler)


def tiny(cls, tmp_path, model_id=""):
    """The tiny stock pipeline of a hub model's class, with what its prompt box needs."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    if cls.__name__ in FLOW:
        return tiny_flow(cls, model_id)
    name = {"StableDiffusionPipeline": "sd", "PixArtAlphaPipeline": "pixart", "DiTPipeline": "dit"}[cls.__name__]
    pipe, _ = BUILDERS[name]()
    torch.manual_seed(0)
    if name == "sd":
        tokenizer, size = char_tokenizer(77)
        encoder = CLIPTextModel(CLIPTextConfig(vocab_size=size, hidden_size=16, intermediate_size=32,
                                               num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77))
        return cls(vae=pipe.vae, text_encoder=encoder, tokenizer=tokenizer, unet=pipe.unet, scheduler=pipe.scheduler,
                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if name == "pixart":
        tokenizer, size = char_tokenizer(120)
        encoder = T5EncoderModel(T5Config(vocab_size=size, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8))
        return cls(tokenizer=tokenizer, text_encoder=encoder, vae=pipe.vae, transformer=pipe.transformer,
                   scheduler=pipe.scheduler)
    return cls(transformer=pipe.transformer, vae=pipe.vae, scheduler=pipe.scheduler,
               id2label={1: "tench, Tinca tinca", 207: "golden retriever"})


@pytest.fixture
def tiny_hub(monkeypatch, tmp_path, offered):
    calls = []

    def from_pretrained(cls, model_id, **kwargs):
        calls.append((cls.__name__, model_id, kwargs))
        pipe = tiny(cls, tmp_path, model_id)
        for component in pipe.components.values():  # from_pretrained gives eval mode (T5 has dropout)
            if isinstance(component, torch.nn.Module):
                component.eval()
        return pipe.to(dtype=torch.bfloat16)  # the requested fp16 is slow on a CPU; bf16 as test_half_precision

    monkeypatch.setattr(hub, "_from_pretrained", from_pretrained)
    return calls


@pytest.mark.parametrize("model_id, prompt", [("stable-diffusion-v1-5/stable-diffusion-v1-5", "a red fox"),
                                              ("PixArt-alpha/PixArt-XL-2-512x512", "a red fox"),
                                              ("facebook/DiT-XL-2-256", "Golden Retriever")])
def test_a_hub_model_runs_full_compute_beside_frdiff(tiny_hub, model_id, prompt):
    d = hub.generate(model_id, prompt, 6, 2, True, 0)
    (cls, loaded_id, kwargs), = tiny_hub
    assert loaded_id == model_id and cls == hub.HUB_MODELS[model_id].pipeline
    assert kwargs == {"torch_dtype": torch.float16, "use_safetensors": True}  # never trust_remote_code
    assert d["full"].shape == d["frdiff"].shape and d["full"].shape[0] == 1
    assert 1.0 < d["stats"]["ideal_speedup"] and 0 < d["psnr"] < 100
    again = hub.generate(model_id, prompt, 6, 2, True, 0)  # loaded once; the same noise, the same images
    assert len(tiny_hub) == 1 and torch.equal(again["frdiff"], d["frdiff"])
    full_only = hub.generate(model_id, prompt, 6, 1, True, 0)  # interval 1: every step computes
    assert torch.equal(full_only["frdiff"], full_only["full"]) and torch.equal(full_only["full"], d["full"])


SCHNELL, DEV = "black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-dev"
SD35, QWEN, WAN = "stabilityai/stable-diffusion-3.5-medium", "Qwen/Qwen-Image", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
FLOW_IDS = (SCHNELL, DEV, SD35, QWEN, WAN)


def test_flow_entries_name_their_class_bf16_defaults_and_a_policy_that_parses():
    import diffusers

    from frdiff import KeyframePolicy

    classes = {SCHNELL: "FluxPipeline", DEV: "FluxPipeline", SD35: "StableDiffusion3Pipeline",
               QWEN: "QwenImagePipeline", WAN: "WanPipeline"}
    for model_id in FLOW_IDS:
        spec = hub.HUB_MODELS[model_id]
        assert spec.pipeline == classes[model_id] and hasattr(diffusers, spec.pipeline)
        assert spec.dtype == "bfloat16" and spec.conditioning == "prompt" and spec.size
        policy = KeyframePolicy.parse(spec.policy, spec.steps)  # the recommended spec, at its default steps
        assert policy.num_steps == spec.steps
        assert policy.keyframes == KeyframePolicy.uniform(spec.steps, spec.interval).keyframes
        assert spec.policy in spec.defaults() and f"{spec.steps} steps" in spec.defaults()
        assert 60 <= hub._duration(model_id, "a fox", spec.steps, 2, True, 0) <= 300
    assert hub.HUB_MODELS[SCHNELL].steps == 4 and hub.HUB_MODELS[SCHNELL].interval == 1  # full compute
    assert "little room" in hub.HUB_MODELS[SCHNELL].note and "uniform:2" in hub.HUB_MODELS[SCHNELL].note
    assert KeyframePolicy.parse("uniform:2", 4).keyframes == [0, 2]  # the note's alternative at 4 steps
    assert [hub.HUB_MODELS[m].steps for m in (DEV, SD35, QWEN, WAN)] == [28, 40, 50, 50]
    assert all(hub.HUB_MODELS[m].interval == 2 for m in (DEV, SD35, QWEN, WAN))
    assert hub.call_kwargs(hub.HUB_MODELS[SCHNELL], None, " a fox ") == {
        "prompt": "a fox", "max_sequence_length": 256, "guidance_scale": 0.0, "height": 1024, "width": 1024}
    assert hub.call_kwargs(hub.HUB_MODELS[DEV], None, "a fox") == {
        "prompt": "a fox", "guidance_scale": 3.5, "height": 1024, "width": 1024}
    assert hub.call_kwargs(hub.HUB_MODELS[SD35], None, "a fox")["guidance_scale"] == 4.5
    assert hub.call_kwargs(hub.HUB_MODELS[QWEN], None, "a fox") == {  # true CFG needs a negative prompt
        "prompt": "a fox", "negative_prompt": " ", "true_cfg_scale": 4.0, "height": 1328, "width": 1328}
    assert hub.call_kwargs(hub.HUB_MODELS[WAN], None, "a fox") == {
        "prompt": "a fox", "guidance_scale": 5.0, "height": 480, "width": 832, "num_frames": 33}
    assert (hub.HUB_MODELS[WAN].frames - 1) % 4 == 0  # Wan's VAE: 4k + 1 frames


@pytest.mark.parametrize("model_id, steps", [(SCHNELL, 4), (DEV, 6), (SD35, 6), (WAN, 6)])
def test_a_flow_hub_model_runs_full_compute_beside_frdiff(tiny_hub, monkeypatch, model_id, steps):
    """Tiny FLUX / SD3 / Wan pipelines with real tokenizers and text encoders, at 32x32 (Wan: 5
    frames, shown as a strip of 4): loaded in bf16, the model's guidance, images in [0, 1]."""
    spec = hub.HUB_MODELS[model_id]
    small = dataclasses.replace(spec, size=(32, 32), frames=5 if spec.frames else 0)
    monkeypatch.setitem(hub.HUB_MODELS, model_id, small)
    d = hub.generate(model_id, "a red fox", steps, 2, True, 0)
    (cls, loaded_id, kwargs), = tiny_hub
    assert loaded_id == model_id and cls == spec.pipeline
    assert kwargs == {"torch_dtype": torch.bfloat16, "use_safetensors": True}  # never trust_remote_code
    width = 32 * hub.STRIP if spec.frames else 32
    assert d["full"].shape == d["frdiff"].shape == (1, 3, 32, width)
    assert 0 <= float(d["full"].min()) and float(d["full"].max()) <= 1
    assert d["stats"]["ideal_speedup"] > 1.0 and 0 < d["psnr"] < 100
    again = hub.generate(model_id, "a red fox", steps, 2, True, 0)  # loaded once; the same noise, the same images
    assert len(tiny_hub) == 1 and torch.equal(again["frdiff"], d["frdiff"])
    full_only = hub.generate(model_id, "a red fox", steps, 1, True, 0)  # interval 1: every step computes
    assert torch.equal(full_only["frdiff"], full_only["full"]) and torch.equal(full_only["full"], d["full"])


def test_a_model_too_large_for_the_gpu_is_refused_before_it_downloads(tiny_hub, monkeypatch):
    monkeypatch.setattr(hub, "_gpu_gib", lambda: 24.0)
    with pytest.raises(ValueError, match="Qwen/Qwen-Image needs about 64 GiB of GPU memory in bfloat16; this GPU "
                                         "has 24 GiB"):
        hub.generate(QWEN, "a fox", 6, 2, True, 0)
    assert tiny_hub == []


def test_zero_gpu_is_asked_for_a_duration_that_grows_with_the_steps(monkeypatch):
    asked = []

    class Spaces:
        @staticmethod
        def GPU(duration):  # noqa: N802 - the spaces package's name
            asked.append(duration)
            return lambda fn: fn

    monkeypatch.setattr(hub, "_spaces", lambda: Spaces)
    hub.gpu(duration=hub._duration)(lambda *args: None)
    assert asked == [hub._duration]  # a function of generate()'s arguments: ZeroGPU's dynamic duration
    assert hub._duration(QWEN, "a fox", 50, 2, True, 0) == 220 > hub._duration(QWEN, "a fox", 10, 2, True, 0)
    assert hub._duration(SCHNELL, "a fox", 4, 2, True, 0) == 64
    assert hub._duration("evil/model", "a fox", 50, 2, True, 0) == hub._duration(QWEN, "a fox", "50") == 120


def test_strip_shows_frames_first_to_last():
    video = torch.arange(5.0).view(1, 5, 1, 1, 1).expand(1, 5, 3, 2, 2)
    shown = hub.strip(video)
    assert shown.shape == (1, 3, 2, 8) and shown[0, 0, 0, ::2].tolist() == [0, 1, 3, 4]


def test_the_tab_offers_each_models_defaults(monkeypatch):
    from app.ui import build_demo

    monkeypatch.setattr(hub, "unavailable", lambda: "")
    components = {c.get("props", {}).get("elem_id"): c["props"] for c in build_demo().config["components"]}
    first = next(iter(hub.HUB_MODELS))
    assert components["hub-defaults"]["value"] == hub.HUB_MODELS[first].defaults()
    assert components["hub-steps"]["value"] == hub.HUB_MODELS[first].steps
    assert set(hub.HUB_MODELS) <= {c[0] if isinstance(c, (list, tuple)) else c
                                   for c in components["hub-model"]["choices"]}
    demo = build_demo()
    chosen, = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "chosen"]
    text, steps, interval = chosen(SCHNELL)  # picking a model sets its steps and recommended interval
    assert (steps, interval) == (4, 1) and "full compute (uniform:1)" in text and "little room" in text
    assert chosen(DEV)[1:] == (28, 2) and "uniform:2 + score mixing" in chosen(DEV)[0]


def test_ids_outside_the_allow_list_and_bad_prompts_are_refused(tiny_hub):
    for bad in ("evil/model", "stable-diffusion-v1-5/stable-diffusion-v1-5 ", None, "x" * 10_000):
        with pytest.raises(ValueError, match="is not offered; choose from stable-diffusion-v1-5"):
            hub.generate(bad, "a fox", 6, 2, True, 0)
    assert tiny_hub == []  # nothing was loaded for them
    with pytest.raises(ValueError, match="no ImageNet class 'unicorn'.*golden retriever"):
        hub.generate("facebook/DiT-XL-2-256", "unicorn", 6, 2, True, 0)
    with pytest.raises(ValueError, match="at most 500"):
        hub.generate("PixArt-alpha/PixArt-XL-2-512x512", "a" * 501, 6, 2, True, 0)
    with pytest.raises(ValueError, match="keyframe interval must be from 1 to 10"):
        hub.generate("PixArt-alpha/PixArt-XL-2-512x512", "a fox", 6, 11, True, 0)


def test_why_hub_models_are_not_offered(monkeypatch):
    def reason():
        hub.unavailable.cache_clear()
        return hub.unavailable()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no GPU" in reason()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "offline" in reason()
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(*args, **kwargs):
        raise OSError("no route")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert "cannot be reached" in reason()
    monkeypatch.setenv("FRDIFF_APP_HUB", "0")
    assert "switched off" in reason()
    hub.unavailable.cache_clear()


def test_the_tab_says_why_when_nothing_can_run(monkeypatch):
    from app.ui import build_demo

    monkeypatch.setattr(hub, "unavailable", lambda: "this server has no GPU")
    texts = [c.get("props", {}).get("value") for c in build_demo().config["components"]]
    assert "**Not offered on this server:** this server has no GPU." in texts
    with pytest.raises(ValueError, match="no GPU"):
        hub.generate("facebook/DiT-XL-2-256", "golden retriever", 6, 2, True, 0)


def test_no_code_trusts_remote_code_or_unpickles_arbitrary_objects():
    """Weights load as safetensors (diffusers' from_pretrained here, use_safetensors for hub ids),
    checkpoints with torch.load(weights_only=True), and nothing passes trust_remote_code."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    loads = []
    for path in [*root.glob("frdiff/**/*.py"), *root.glob("app/*.py"), root / "app.py", *root.glob("analysis/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                assert "trust_remote_code" not in keywords, f"{path}: trust_remote_code"
                name = ast.unparse(node.func)
                if name.endswith("torch.load"):
                    loads.append(path.name)
                    flag = keywords.get("weights_only")
                    assert isinstance(flag, ast.Constant) and flag.value is True, f"{path}: {ast.unparse(node)}"
                assert not name.endswith(("pickle.load", "pickle.loads")), f"{path}: {name}"
    assert "train.py" in loads  # the checkpoints are found and checked
