"""The analysis helpers that shape README figures."""

import json

from analysis.pareto_plot import family, main
from frdiff.metrics import pareto_front


def test_front_keeps_only_unbeaten_points():
    points = [(1.5, 40.0), (2.0, 38.0), (2.0, 35.0), (1.8, 37.0), (2.5, 30.0)]
    assert pareto_front(points) == [(1.5, 40.0), (2.0, 38.0), (2.5, 30.0)]


def test_families():
    assert family({"method": "DeepCache"}) == "DeepCache (PyPI)"
    assert family({"method": "fewer steps", "setting": "DDIM 25 steps"}) == "fewer DDIM steps"
    assert family({"method": "frdiff", "policy": "adaptive:0.1"}) == "frdiff adaptive"
    assert family({"method": "frdiff", "policy": "uniform:2"}) == "frdiff uniform"
    assert family({"method": "frdiff", "policy": "deep:3"}) == "frdiff whole-block skip"
    assert family({"method": "frdiff", "policy": "assets/policies/x.json"}) == "frdiff Auto-FR (tuned)"
    assert family({"method": "frdiff", "policy": "p-per-step.json"}) == "frdiff Auto-FR, per-step gates"


def test_plot_is_written(tmp_path, monkeypatch):
    rows = [{"method": "DeepCache", "setting": "interval 2", "speedup": 1.8, "ideal_speedup": 1.9, "psnr": 41.0},
            {"method": "frdiff", "policy": "uniform:2", "setting": "uniform:2", "speedup": 1.5,
             "ideal_speedup": 1.5, "psnr": 39.0}]
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"model": "glyph-unet", "steps": 50, "batch": 8, "samples": 4,
                                   "machine": {"cpu": "cpu", "threads": 1}, "rows": rows}))
    out = tmp_path / "p.png"
    monkeypatch.setattr("sys.argv", ["x", "--results", str(results), "--out", str(out),
                                     "--rerun", str(tmp_path / "none.json"), "--extra", str(tmp_path / "none.json")])
    main()
    assert out.read_bytes()[:4] == b"\x89PNG"
    # with a rerun: its rows are drawn hollow and joined to the main run's point
    import matplotlib.pyplot as plt

    rerun = tmp_path / "rerun.json"
    rerun.write_text(json.dumps({"repeats": 8, "rows": [dict(rows[0], speedup=2.1)]}))
    drawn = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path: drawn.append(fig))
    monkeypatch.setattr("sys.argv", ["x", "--results", str(results), "--out", str(out),
                                     "--rerun", str(rerun), "--extra", str(tmp_path / "none.json")])
    main()
    measured = drawn[0].axes[0]
    hollow = [c for c in measured.collections if len(c.get_offsets()) == 1
              and tuple(c.get_offsets()[0]) == (2.1, 41.0)]
    joins = [l for l in measured.lines if l.get_linestyle() == ":"]
    assert len(hollow) == 1 and [tuple(l.get_xdata()) for l in joins] == [(1.8, 2.1)]


def test_temporal_similarity_observes_without_changing(tiny_pipe):
    import torch

    from frdiff.analysis import temporal_similarity
    from frdiff.targets import find_blocks

    def run():
        return tiny_pipe(["A", "7"], num_inference_steps=6, generator=torch.Generator().manual_seed(0),
                         output_type="pt").images

    before = run()
    sim = temporal_similarity(tiny_pipe, 6, class_labels=["A", "7"],
                              generator=torch.Generator().manual_seed(0), output_type="pt")
    blocks = find_blocks(tiny_pipe.denoiser)
    assert sim.change.shape == (5, len(blocks)) == sim.cosine.shape
    assert torch.isfinite(sim.change).all() and (sim.change > 0).all()
    assert ((sim.cosine > -1.0001) & (sim.cosine < 1.0001)).all()
    assert torch.equal(run(), before)  # nothing changed, every hook gone
    assert not tiny_pipe.denoiser._forward_hooks and not tiny_pipe.denoiser._forward_pre_hooks
    assert all(not b.module._forward_hooks for b in blocks)
    assert "set_timesteps" not in tiny_pipe.scheduler.__dict__


def test_write_result_records_command_and_machine(tmp_path):
    from analysis.common import write_result

    path = write_result(str(tmp_path / "r.json"), {"rows": [1]}, "| a |")
    saved = json.loads(open(path).read())
    assert saved["rows"] == [1] and saved["command"].startswith("python") and "cpu" in saved["machine"]
    assert (tmp_path / "r.md").read_text() == "| a |\n"


def test_the_docs_tables_are_the_ones_their_result_files_render():
    """Every generated table in README.md and docs/results.md equals what its script renders
    from the result file named beside it (python -m analysis.results_doc rewrites them)."""
    from analysis.results_doc import DOCS, MARKER, main

    assert main(["--check"]) == 0
    assert sum(len(MARKER.findall(open(doc).read())) for doc in DOCS) >= 10


def test_a_stale_docs_table_is_reported(tmp_path, capsys):
    from analysis.results_doc import main

    doc = tmp_path / "doc.md"
    doc.write_text("<!-- table: models analysis/results/models.json -->\n| old |\n<!-- /table -->\n")
    assert main(["--check", "--doc", str(doc)]) == 1 and "out of date" in capsys.readouterr().err
    assert main(["--doc", str(doc)]) == 0 and "glyph-unet" in doc.read_text()
    assert main(["--check", "--doc", str(doc)]) == 0


def test_verdict_quality_rechecks_each_winning_row_on_fresh_images(tmp_path):
    """analysis.verdict_quality picks frdiff's best row per budget as the verdict table does and
    reruns exactly that spec through `frdiff sweep` against full compute on new images."""
    from analysis import verdict_quality

    def row(method, policy, speed, db):
        return {"method": method, "setting": f"{policy}, mixing on", "policy": policy, "speedup": speed,
                "ideal_speedup": speed, "psnr": db}

    sweep = {"model": "glyph-unet", "scheduler": "ddim", "steps": 6,
             "rows": [row("frdiff", "uniform:1", 1.6, 99.0), row("frdiff", "uniform:2", 2.1, 30.0),
                      row("frdiff", "uniform:3", 1.2, 50.0), row("fewer steps", "-", 2.2, 20.0),
                      row("MagCache", "-", 2.3, 31.0),
                      row("frdiff", "uniform:1", 1.7, 99.0)]}  # uniform:1 again, timed faster in another sweep
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep))
    result = verdict_quality.check(str(path), samples=4, seed=1)
    cells = {c["budget"]: c for c in result["cells"]}
    assert sorted(cells) == [1.5, 2.0] and cells[1.5]["policy"] == "uniform:1" and cells[2.0]["policy"] == "uniform:2"
    same = cells[1.5]  # every step a keyframe: the full-compute images themselves
    assert same["class_agreement"] == 1.0 and same["class_accuracy"] == same["baseline_class_accuracy"]
    assert same["fd"] == same["baseline_fd"] and same["class_accuracy_ok"] and same["fd_ok"]
    assert same["speedup"] == 1.6 and same["sweep_psnr"] == 99.0  # the sweep's speed, not remeasured
    reused = cells[2.0]
    assert reused["psnr"] < 60 and 0 <= reused["class_agreement"] <= 1
    assert reused["fd_ok"] == (reused["fd"] <= 1.1 * reused["baseline_fd"])
    table = verdict_quality.markdown({"groups": [result]})
    assert "| glyph-unet, ddim 6 | 1.5x | uniform:1, mixing on (1.60x) |" in table and "| yes, yes | yes |" in table
    assert same["on_measured_front"] and not cells[2.0]["on_measured_front"]  # MagCache: faster and better

    assert len(verdict_quality.verdict_groups()) == 5  # the README verdict table: two models x two samplers, glyph-flux
