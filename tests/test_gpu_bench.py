"""analysis.gpu_bench: skipped cleanly without CUDA, and its whole path on tiny topologies."""

import pytest
import torch

from analysis import gpu_bench

pytestmark = pytest.mark.timeout(600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the real benchmark would run")
def test_without_cuda_it_says_skipped_and_exits_0(capsys):
    assert gpu_bench.main(["--quick"]) == 0
    assert capsys.readouterr().out.strip() == "skipped: no CUDA (python -m analysis.gpu_bench measures on a GPU; " \
                                              "nothing was run)"


def test_unknown_models_and_bad_frame_counts_are_refused(capsys):
    assert gpu_bench.main(["--quick", "--models", "sd15,sd3"]) == 2
    assert "unknown model(s) sd3" in capsys.readouterr().err
    assert gpu_bench.main(["--quick", "--models", "wan13", "--wan-frames", "32"]) == 2
    assert "--wan-frames must be 4k + 1" in capsys.readouterr().err


def test_every_model_and_method_gets_a_row_on_tiny_topologies(capsys):
    assert gpu_bench.main(["--quick", "--tiny", "--device", "cpu", "--steps", "4"]) == 0
    table = capsys.readouterr().out
    for model in gpu_bench.MODELS:
        rows = [line for line in table.splitlines() if line.startswith(f"| {model} |")]
        assert len(rows) >= 7 and not any("failed" in line for line in rows), rows
        assert any("all keyframes" in line for line in rows)
    assert "| sd15 | DeepCache (interval 3) |" in table and "| dit | MagCache |" in table
    assert "| sd15 | frdiff residual reuse, interval 2 | not applicable" in table
    for model in gpu_bench.FLOW_MODELS:  # every frdiff row and every peer measured (a speedup column)
        rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith(f"| {model} |")}
        measured = ("full compute", "frdiff, all keyframes (hook overhead)", "frdiff FR, interval 2",
                    "frdiff FR + score mixing, interval 2", "frdiff residual reuse, interval 2", "MagCache",
                    "TaylorSeer", "cache-dit DBCache") + (() if model == "sd35" else ("FirstBlockCache",))
        for method in measured:
            assert method in rows and "x |" in rows[method], (model, method, rows.get(method))
    assert "| sd35 | FirstBlockCache | not applicable: diffusers' FirstBlockCache tail hook" in table
    assert "| flux-dev | full compute | 1.00x | 1.00x |" in table and "| 4, float32 |" in table


def test_the_flow_topologies_are_the_published_sizes_in_bf16():
    """Built on the meta device (shapes only): the denoisers' parameter counts and the embeddings."""
    expected = {"flux-dev": (11.90e9, (1, 512, 4096)), "sd35": (2.24e9, (1, 333, 4096)),
                "wan13": (1.42e9, (1, 512, 4096))}
    for name, (params, text) in expected.items():
        assert gpu_bench.model_dtype(name, "cuda") == torch.bfloat16
        assert gpu_bench.model_dtype(name, "cpu") == torch.float32
        pipe, kwargs = gpu_bench.build(name, device="meta", dtype=torch.bfloat16)
        model = pipe.transformer
        assert model.dtype == torch.bfloat16 and model.device.type == "meta"
        assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.01)
        assert tuple(kwargs["prompt_embeds"].shape) == text
        assert pipe.scheduler.sigmas.dtype == torch.float32  # the scheduler is not made in the model's dtype
    assert gpu_bench.model_dtype("sdxl", "cuda") == torch.float16
    flux, kwargs = gpu_bench.build("flux-dev", device="meta", dtype=torch.bfloat16)
    assert flux.transformer.config.guidance_embeds and kwargs["guidance_scale"] == 3.5 and kwargs["height"] == 1024
    assert len(flux.transformer.transformer_blocks) == 19 and len(flux.transformer.single_transformer_blocks) == 38
    sd35, kwargs = gpu_bench.build("sd35", device="meta", dtype=torch.bfloat16)
    assert list(sd35.transformer.config.dual_attention_layers) == list(range(13))
    wan, kwargs = gpu_bench.build("wan13", device="meta", dtype=torch.bfloat16, frames=81)
    assert (kwargs["num_frames"], kwargs["height"], kwargs["width"], kwargs["guidance_scale"]) == (81, 480, 832, 5.0)
    assert wan.scheduler.config.use_flow_sigmas and wan.scheduler.config.flow_shift == 3.0
    assert gpu_bench.STEPS == {"flux-dev": 28, "sd35": 40, "wan13": 50}
