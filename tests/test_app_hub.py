"""Hub models in the app: the allow-list, the reasons they are not offered, and the whole path
(load, prompt, full compute beside FRDiff) on tiny SD / PixArt / DiT pipelines built from configs,
with real tokenizers and text encoders, through the loader a hub model goes through."""

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


def tiny(cls, tmp_path):
    """The tiny stock pipeline of a hub model's class, with what its prompt box needs."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

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
        pipe = tiny(cls, tmp_path)
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
