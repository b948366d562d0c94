"""The Learn tab (Auto-FR in the app), the guided path's words and the policy files: called
directly here; tests/test_app_api.py drives /learn, /import_policy and /export_policy served."""

import json

import gradio as gr
import pytest
import torch

from app import learn as learning
from app.editor import export_policy, import_policy
from app.errors import GENERIC, safe
from app.models import POOL
from app.presets import preset_text
from app.texts import GUIDE
from frdiff import KeyframePolicy

STEPS = 6


@pytest.fixture(autouse=True)
def few_iterations(monkeypatch):
    monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=3, seconds=240))


def settings(target=1.5, model="glyph-unet", seed=0):
    return learning.settings(model, "A7", "DDIM", STEPS, True, 30, 0.5, seed, target)


def events(target=1.5, **kw):
    return list(learning.run(*settings(target, **kw)))


def clean(pipe) -> bool:
    """Nothing of a tuner left on a pipeline: no replaced forward, the weights frozen as the pool keeps them."""
    model = pipe.denoiser
    return not any("forward" in vars(m) for m in model.modules()) and not any(p.requires_grad
                                                                              for p in model.parameters())


def test_learning_streams_its_checks_and_ends_with_a_compared_policy():
    seen = events()
    kinds = [type(e) for e in seen]
    assert kinds[-1] is learning.Done and learning.Start in kinds and kinds.count(learning.Check) >= 2
    descent = [e for e in seen if isinstance(e, learning.Progress) and e.stage == "descent"]
    assert descent[-1].done == descent[-1].total == 3 + 1  # the reuse family's 3 steps, then a third as many
    result, rows = seen[-1].result, seen[-1].rows
    assert result.ideal_speedup >= 1.5 and result.policy.num_steps == STEPS
    assert [r["method"] for r in rows][:2] == ["Full compute", learning.LEARNED]
    assert rows[2]["method"].startswith(learning.UNIFORM) and rows[3]["method"].startswith("Fewer steps")
    assert rows[0]["psnr"] == 100.0 and result.cost == "measured"
    # the budget is this server's measured seconds: a table profiled once for the model, sampler
    # and glyph count, whose estimate of the learned policy is the result's speedup
    assert learning.Progress("profile", 0, 1) in seen
    table = learning._TABLES[("glyph-unet", "DDIM", 2)]
    assert table.batch == 2 and table.model == "UNet2DModel"
    assert table.costs.speedup(result.policy, settings()[0].mixing) == pytest.approx(result.ideal_speedup, rel=1e-6)
    assert f"{rows[1]['measured_speedup']:.2f}x" in learning.summary(result, rows, 1.0)
    with POOL.borrow("glyph-unet") as pipe:
        assert clean(pipe)
    # the same request learns the same policy (the tuner's batches come from its own seed)
    assert events()[-1].result.policy == result.policy


def test_stopping_leaves_the_pipeline_as_a_fresh_one():
    with POOL.borrow("glyph-unet") as pipe:
        before = pipe(["A", "7"], num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
                      output_type="pt").images
    stream = learning.run(*settings())
    for event in stream:
        if isinstance(event, learning.Progress) and event.stage == "descent":
            break  # mid-descent: the model is patched by the gated pass right now
    stream.close()  # what a closed page or the Stop button does to the generator
    with POOL.borrow("glyph-unet") as pipe:
        assert clean(pipe)
        after = pipe(["A", "7"], num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
                     output_type="pt").images
    assert torch.equal(before, after)


def test_the_time_limit_stops_learning_with_a_message(monkeypatch):
    monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=3, seconds=0))
    last = events()[-1]
    assert isinstance(last, learning.Failed) and isinstance(last.error, learning.Stopped)
    assert "time limit of 0 s (FRDIFF_APP_TUNER_SECONDS)" in str(last.error)


@pytest.mark.parametrize("target, message", [(5, "from 1.2 to 3.0"), (float("nan"), "target speedup"),
                                             ("2", "target speedup"), (True, "target speedup")])
def test_bad_targets_are_refused_before_any_work(target, message):
    with pytest.raises(ValueError, match=message):
        settings(target)


def test_a_failing_generator_callback_reaches_the_page_as_a_message():
    def stream(fail):
        yield 1
        raise fail

    with pytest.raises(gr.Error, match="bad thing"):
        list(safe(stream)(ValueError("bad thing")))
    with pytest.raises(gr.Error) as err:
        list(safe(stream)(RuntimeError("internal detail")))
    assert err.value.message == GENERIC


def test_the_guided_path_names_a_tab_and_a_control_for_each_step():
    assert [tab for tab, _, _ in GUIDE] == ["redundancy", "compare", "frequency", "learn"]
    for (_, label, text), control in zip(GUIDE, ("Measure", "Generate", "Measure spectra", "Learn a policy")):
        assert label[0] in "1234" and f"**{control}**" in text


def test_policy_files_round_trip_and_bad_files_are_refused(tmp_path):
    text = preset_text("glyph-dit", "DDIM", STEPS, "uniform, interval 3")
    json_path, txt_path = export_policy("glyph-dit", STEPS, text)
    assert json_path.endswith("policy.json") and txt_path.endswith("policy.txt")
    for path in (json_path, txt_path):
        assert KeyframePolicy.from_text(import_policy("glyph-dit", STEPS, path)) == KeyframePolicy.from_text(text)
    global_rows = tmp_path / "global.json"  # a policy without block names is laid over the model's blocks
    global_rows.write_text(KeyframePolicy.uniform(STEPS, 2).to_json())
    assert "transformer_blocks" in import_policy("glyph-dit", STEPS, str(global_rows))
    bad = {"short.json": KeyframePolicy.uniform(STEPS - 1, 2).to_json(),
           "blocks.txt": preset_text("glyph-unet", "DDIM", STEPS, "uniform, interval 2"),
           "modes.json": json.dumps({"schedule": ["K", "Q"] + ["K"] * (STEPS - 2)}),
           "start.json": json.dumps({"schedule": ["F"] + ["K"] * (STEPS - 1)}),
           "binary.txt": b"\xff\xfe\x00policy"}
    messages = {"short.json": "covers 5 steps but the run has 6", "blocks.txt": "blocks do not match",
                "modes.json": "Q", "start.json": "step 0", "binary.txt": "not UTF-8"}
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ValueError, match=messages[name]):
            import_policy("glyph-dit", STEPS, str(path))
    huge = tmp_path / "huge.txt"
    huge.write_text("K" * 200_000)
    with pytest.raises(ValueError, match="at most 100000 .FRDIFF_APP_MAX_UPLOAD"):
        import_policy("glyph-dit", STEPS, str(huge))
    with pytest.raises(ValueError, match="choose a policy file"):
        import_policy("glyph-dit", STEPS, "/etc/passwd/nothing")


def test_a_request_past_its_time_limit_stops_with_a_message_and_the_next_one_runs(monkeypatch):
    from app import compare as cmp
    from app import models
    from app.models import TimeLimitExceeded

    text = preset_text("glyph-unet", "DDIM", STEPS, "uniform, interval 2")
    alone = cmp.compare("glyph-unet", "A7", "DDIM", STEPS, text, True, 30, 0.5, 0, [])[0]
    monkeypatch.setenv("FRDIFF_APP_TIME_LIMIT", "7")
    assert models.time_limit() == 7
    monkeypatch.setattr(models, "time_limit", lambda: 0)  # any run is past it at its first step
    with pytest.raises(TimeLimitExceeded, match=r"time limit of 0 s \(FRDIFF_APP_TIME_LIMIT\)"):
        cmp.compare("glyph-unet", "A7", "DDIM", STEPS, text, True, 30, 0.5, 0, [])
    monkeypatch.undo()
    with POOL.borrow("glyph-unet") as pipe:
        assert clean(pipe)  # stopped mid-run inside accelerate: nothing of it left
    again = cmp.compare("glyph-unet", "A7", "DDIM", STEPS, text, True, 30, 0.5, 0, [])[0]
    assert all(torch.equal(a.images, b.images) for a, b in zip(alone, again))
