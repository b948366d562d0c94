"""The served app driven as API users drive it: gradio_client against a localhost server.

Every documented endpoint is called; two clients call /generate and /similarity at the same
moment on the same model (the server allows two concurrent model runs) and each result must
equal the same request run alone, bit for bit; bad input gets its message back."""

import json
import os
import pathlib
import threading

import numpy as np
import pytest
from PIL import Image

from app.presets import preset_text

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.timeout(300)
STEPS = 6
TEXT = preset_text("glyph-unet", "DDIM", STEPS, "uniform, interval 2")
SETTINGS = ["glyph-unet", "A7", "DDIM", STEPS, TEXT, True, 30, 0.5, 0]
TIMING = {"seconds", "measured_speedup"}


@pytest.fixture(scope="module")
def url():
    from app.ui import serve_locally

    demo, address = serve_locally(concurrency=2)
    yield address
    demo.close()


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def generate(url, seed=0, methods=("fewer-steps", "fr-only")):
    out = client(url).predict(*SETTINGS[:-1], seed, list(methods), api_name="/generate")
    gallery, numbers = out[0], out[7]
    pixels = [np.asarray(Image.open(item["image"])) for item in gallery]
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in numbers["runs"]]
    return pixels, rows, out


def similarity(url, seed=0):
    return client(url).predict(*SETTINGS[:-1], seed, "down_blocks.0", api_name="/similarity")[4]


def test_generate_returns_every_run_and_its_numbers(url):
    pixels, rows, out = generate(url)
    assert [r["method"] for r in rows] == ["Full compute", "FRDiff (your policy)", "FR only (mixing off)",
                                           "Fewer steps (4)"]
    assert len(pixels) == 4 and len(out[4]) == 3  # the runs, and their differences to full compute
    table = out[5]
    assert table["headers"][0] == "method" and len(table["data"]) == 4
    assert rows[0]["psnr"] == 100.0 and rows[1]["psnr"] < 100.0


def test_every_analysis_endpoint_answers(url):
    c = client(url)
    out = c.predict(*SETTINGS, "down_blocks.0", api_name="/similarity")
    sim = out[4]
    assert len(sim["change"]) == STEPS - 1 and len(sim["pairwise"][0]) == STEPS
    plots = json.loads(pathlib.Path(out[-1]).read_text())  # the plots' data, as downloaded
    matrix = plots["step x step distance"]["traces"][0]["z"]
    assert len(matrix) == STEPS and all(len(row) == STEPS for row in matrix) and matrix[0][0] == 0.0
    assert len(plots["per-block change"]["traces"][0]["z"]) == len(sim["blocks"])
    out = c.predict(*SETTINGS, api_name="/spectra")
    spectra = out[4]
    assert set(spectra["scores"]["mean"]) >= {"eps_key", "eps_fr", "mixed"}
    plots = json.loads(pathlib.Path(out[-1]).read_text())
    assert set(plots) == {"spectra of the mixed predictions", "lam(r)", "spectra of the final images"}
    assert all(p["traces"] and all("y" in t for t in p["traces"]) for p in plots.values())
    traj = c.predict(*SETTINGS, api_name="/trajectory")
    assert traj[-1]["kinds"][0] == "keyframe" and len(traj[-1]["psnr"]) == STEPS
    curve = json.loads(pathlib.Path(traj[-2][1]).read_text())["distance per step"]["traces"]
    assert any(t.get("y") and t["y"][-1] == pytest.approx(traj[-1]["psnr"][-1]) for t in curve)
    grid, status = c.predict("glyph-unet", STEPS, TEXT, True, 30, 0.5, api_name="/check_policy")
    assert status.startswith("Valid: 3 keyframe steps")


def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(url):
    from gradio_client.exceptions import AppError

    c = client(url)
    with pytest.raises(AppError, match="no glyph '0'"):
        c.predict("glyph-unet", "A0", *SETTINGS[2:], [], api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 100"):  # the slider, server-side
        c.predict("glyph-unet", "A", "DDIM", 1000, TEXT, True, 30, 0.5, 0, [], api_name="/generate")
    with pytest.raises(AppError, match="not in the list of choices"):  # the dropdown, server-side
        c.predict("glyph-unet", "A", "nope", STEPS, *SETTINGS[4:], "x", api_name="/similarity")
    assert generate(url, methods=())[1][0]["psnr"] == 100.0


def test_concurrent_generate_and_similarity_equal_their_sequential_results(url):
    alone_generate, alone_similarity = generate(url, seed=3), similarity(url, seed=3)
    results, errors = {}, []

    def call(name, fn):
        try:
            results[name] = fn(url, seed=3)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    for _ in range(2):  # twice: the second round starts with every replica already used
        threads = [threading.Thread(target=call, args=("generate", generate)),
                   threading.Thread(target=call, args=("generate2", generate)),
                   threading.Thread(target=call, args=("similarity", similarity))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for name in ("generate", "generate2"):
            pixels, rows, _ = results[name]
            assert rows == alone_generate[1]
            assert all(np.array_equal(a, b) for a, b in zip(pixels, alone_generate[0]))
        assert results["similarity"] == alone_similarity


def test_a_named_policy_and_a_spec_made_grid_run_at_any_step_count_from_two_clients(url):
    """/generate with steps=20 and editor="uniform:2" (a spec), and with the 6-step default grid
    (made from the spec uniform:2, so re-derived for 20 steps): the same FRDiff run, from two
    clients at once as from one."""
    def run(editor):
        out = client(url).predict("glyph-unet", "A", "DDIM", 20, editor, True, 30, 0.5, 1, [], api_name="/generate")
        row = next(r for r in out[7]["runs"] if r["method"] == "FRDiff (your policy)")
        return np.asarray(Image.open(out[0][1]["image"])), row["network_calls"], row["counted_speedup"]

    alone = run("uniform:2")
    assert alone[2] > 1.2  # a 20-step uniform:2 policy, feature reuse at every other step
    results = []
    threads = [threading.Thread(target=lambda e=e: results.append(run(e))) for e in ("uniform:2", TEXT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for pixels, calls, counted in results:
        assert np.array_equal(pixels, alone[0]) and (calls, counted) == alone[1:]


def test_live_redoes_frdiff_only_and_matches_generate_bit_for_bit(url):
    """/live after /generate in one session: the same FRDiff image as /generate's, and for an
    edited policy the image of that policy; full compute comes from the session's last run."""
    c = client(url)
    out = c.predict(*SETTINGS, [], api_name="/generate")
    frdiff_generated = np.asarray(Image.open(out[0][1]["image"]))
    same = c.predict(*SETTINGS, True, api_name="/live")
    assert np.array_equal(np.asarray(Image.open(same[0])), frdiff_generated)
    psnr = out[7]["runs"][1]["psnr"]
    assert f"PSNR **{psnr:.1f} dB**" in same[2]
    edited = SETTINGS[:4] + [preset_text("glyph-unet", "DDIM", STEPS, "uniform, interval 3")] + SETTINGS[5:]
    other = c.predict(*edited, True, api_name="/live")
    fresh = client(url).predict(*edited, [], api_name="/generate")  # another session, from scratch
    assert np.array_equal(np.asarray(Image.open(other[0])), np.asarray(Image.open(fresh[0][1]["image"])))
    assert not np.array_equal(np.asarray(Image.open(other[0])), frdiff_generated)


def learn(url, seed=0):
    """/learn as an API user calls it: the final output (the learned policy text is the last)."""
    return client(url).predict(*SETTINGS[:-1], seed, 1.5, api_name="/learn")


def test_learn_endpoint_loads_a_policy_and_concurrent_requests_learn_the_same(url, monkeypatch):
    from app import learn as learning

    monkeypatch.setattr(learning, "LEARN_LIMITS", learning.LearnLimits(iterations=3, seconds=240))
    alone = learn(url)
    figure, status, gallery, table, text = alone
    assert status.startswith("**Learned** a policy in") and len(gallery) == 4
    assert [row[0] for row in table["data"]][:2] == ["Full compute", learning.LEARNED]
    from app.inputs import policy_of

    assert policy_of("glyph-unet", STEPS, text).num_steps == STEPS  # a valid policy, now in the editor
    results, errors = [], []

    def call(seed):
        try:
            results.append((seed, learn(url, seed)))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=call, args=(s,)) for s in (0, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2
    for _, out in results:  # the same policy, the same numbers (less the times) as alone
        assert out[4] == text
        assert [r[:2] + r[4:] for r in out[3]["data"]] == [r[:2] + r[4:] for r in table["data"]]


def test_policy_files_through_the_api(url, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    c = client(url)
    files = c.predict("glyph-unet", STEPS, TEXT, api_name="/export_policy")
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == ["policy.json", "policy.txt"]
    json_path = next(p for p in files if p.endswith(".json"))
    grid = [line for line in TEXT.split("\n") if not line.startswith("#")]  # the rows (a file holds no spec line)
    imported = c.predict("glyph-unet", STEPS, handle_file(json_path), api_name="/import_policy")
    assert [line for line in imported.split("\n") if not line.startswith("#")] == grid
    bad = tmp_path / "bad.json"
    bad.write_text('{"schedule": ["F", "K", "K", "K", "K", "K"]}')
    with pytest.raises(AppError, match="step 0"):
        c.predict("glyph-unet", STEPS, handle_file(str(bad)), api_name="/import_policy")


def test_a_short_load_over_mixed_endpoints_equals_each_request_alone(url):
    """analysis.app_load's load phase, short: 4 clients, 2 requests each, from a mix of every
    endpoint that runs a model (small settings); every answer equals the same request alone."""
    from analysis.app_load import load, requests

    mix = requests()
    picked = [next(r for r in mix if r[0] == name) for name in
              ("/generate", "/live", "/similarity", "/spectra", "/trajectory", "/check_policy")]
    picked.append(next(r for r in mix if r[0] == "/generate" and r[1][0] == "glyph-dit"))
    result = load(url, clients=4, seconds=120, max_requests=2, mix=picked)
    assert result["failures"] == [] and result["mismatched"] == []
    assert result["served"] == 8 and result["distinct_requests"] >= 2


FLUX_TEXT = preset_text("glyph-flux", "Euler", STEPS, "uniform, interval 2")
FLUX = ["glyph-flux", "A7", "Euler", STEPS, FLUX_TEXT, True, 30, 0.5]


def test_glyph_flux_in_every_tab_and_from_two_clients_at_once(url):
    """The flow-matching MMDiT through /generate (two clients at once: each equal to the same
    request alone), /similarity on a single-stream block, /spectra and /trajectory."""
    from gradio_client.exceptions import AppError

    def flux_generate(seed=1):
        out = client(url).predict(*FLUX, seed, ["fewer-steps", "peer"], api_name="/generate")
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in out[7]["runs"]]
        return [np.asarray(Image.open(i["image"])) for i in out[0]], rows

    alone = flux_generate()
    methods = [r["method"] for r in alone[1]]
    assert methods[:2] == ["Full compute", "FRDiff (your policy)"] and any("MagCache" in m for m in methods)
    results = []
    threads = [threading.Thread(target=lambda: results.append(flux_generate())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for pixels, rows in results:
        assert rows == alone[1] and all(np.array_equal(a, b) for a, b in zip(pixels, alone[0]))
    c = client(url)
    sim = c.predict(*FLUX, 0, "single_transformer_blocks.0", api_name="/similarity")[4]
    assert len(sim["change"]) == STEPS - 1
    spectra = c.predict(*FLUX, 0, api_name="/spectra")[4]
    assert set(spectra["scores"]["mean"]) >= {"eps_key", "eps_fr", "mixed"}
    assert c.predict(*FLUX, 0, api_name="/trajectory")[-1]["kinds"][0] == "keyframe"
    with pytest.raises(AppError, match="flow-matching model: choose Euler"):
        c.predict("glyph-flux", "A7", "DDIM", STEPS, FLUX_TEXT, True, 30, 0.5, 0, [], api_name="/generate")
    with pytest.raises(AppError, match="block"):  # a glyph-unet policy on glyph-flux
        c.predict("glyph-flux", "A7", "Euler", STEPS, TEXT, True, 30, 0.5, 0, [], api_name="/generate")


def test_ab_compares_two_named_policies_and_two_clients_get_what_one_gets(url):
    """/ab: full compute, A and B from the same noise, their numbers and the per-step x0 distance;
    B = A gives identical runs; concurrent clients get the answer one client gets alone."""
    def ab(a, b):
        out = client(url).predict("glyph-unet", "A7", "DDIM", STEPS, a, b, True, 30, 0.5, 2, api_name="/ab")
        gallery, numbers = out[0], out[-1]
        pixels = [np.asarray(Image.open(item["image"])) for item in gallery]
        return pixels, [{k: v for k, v in r.items() if k not in TIMING} for r in numbers["runs"]], numbers

    pixels, rows, numbers = ab("uniform:2", "uniform:3")
    assert [r["method"] for r in rows] == ["Full compute", "Policy A", "Policy B"] and len(pixels) == 3
    assert rows[1]["counted_speedup"] != rows[2]["counted_speedup"]
    assert set(numbers["per_step"]) == {"A vs full compute", "B vs full compute", "A vs B"}
    assert all(len(v) == STEPS for v in numbers["per_step"].values()) and numbers["per_step"]["A vs B"][0] == 100.0
    same = ab("uniform:2", "uniform:2")
    assert np.array_equal(same[0][1], same[0][2]) and set(same[2]["per_step"]["A vs B"]) == {100.0}
    results = []
    threads = [threading.Thread(target=lambda: results.append(ab("uniform:2", "uniform:3"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for got in results:
        assert got[1] == rows and all(np.array_equal(a, b) for a, b in zip(got[0], pixels))
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="policy B"):
        client(url).predict("glyph-unet", "A7", "DDIM", STEPS, "uniform:2", "nonsense", True, 30, 0.5, 2,
                            api_name="/ab")
