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


def test_unknown_models_are_refused(capsys):
    assert gpu_bench.main(["--quick", "--models", "sd15,sd3"]) == 2
    assert "unknown model(s) sd3" in capsys.readouterr().err


def test_every_model_and_method_gets_a_row_on_tiny_topologies(capsys):
    assert gpu_bench.main(["--quick", "--tiny", "--device", "cpu", "--steps", "4"]) == 0
    table = capsys.readouterr().out
    for model in gpu_bench.MODELS:
        rows = [line for line in table.splitlines() if line.startswith(f"| {model} |")]
        assert len(rows) >= 7 and not any("failed" in line for line in rows), rows
        assert any("all keyframes" in line for line in rows)
    assert "| sd15 | DeepCache (interval 3) |" in table and "| dit | MagCache |" in table
    assert "| sd15 | frdiff residual reuse, interval 2 | not applicable" in table
