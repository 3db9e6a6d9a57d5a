"""The hand-written references of the speed benchmarks compute the same losses as pyrogen's models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from conftest import loss
from run import PlainMAF  # noqa: E402

from pyrogen.models import MAF  # noqa: E402


@pytest.mark.parametrize("direct", [False, True])
def test_plain_maf_reference_computes_pyrogens_loss(direct):
    torch.manual_seed(0)
    maf = MAF(event_shape=(6,), num_layers=3, hidden=(16,), direct=direct)
    plain = PlainMAF(maf)
    with torch.no_grad():  # copy the weights: same network, written by hand
        ws = [layer for made in maf.mades for layer in (*made.net.layers, made.net.direct) if layer is not None]
        for w, b, layer in zip(plain.weights, plain.biases, ws, strict=True):
            w.copy_(layer.weight)
            b.copy_(layer.bias if layer.bias is not None else torch.zeros_like(b))
    x = torch.randn(32, 6)
    torch.testing.assert_close(plain.loss(x), loss(maf, x), rtol=1e-5, atol=1e-5)


def test_the_readme_names_the_flags_behind_every_benchmark_row_off_the_registered_defaults():
    """`pyrogen train made` gave 18.17 where the README quoted 17.29 (eight orderings, a
    benchmark setting). Every model argument a benchmark row sets away from the registered default must appear
    in the README or the docs pages as the `--set` flag that reproduces it."""
    import inspect
    import json
    import re

    import autoregressive
    import ebm
    import flows
    import gan
    import latent
    import mnist

    from pyrogen.models import registry

    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    readme = re.sub(r"\s+", " ", " ".join(p.read_text() for p in pages))
    rows = [(flows.VARIANTS.get(n, n), kw) for table in (flows.TOY_FLOWS, flows.DIGIT_FLOWS) for n, kw in table.items()]
    rows += [(registered, kw) for _, registered, kw in latent.NLL_MODELS]
    rows += [(autoregressive.REGISTERED.get(n, n), kw) for n, kw in autoregressive.DIGITS.items()]
    rows += [(registered, kw) for _, registered, kw in gan.VARIANTS + ebm.VARIANTS]
    rows += list(mnist.VARIANTS.values())

    def norm(v):
        return list(v) if isinstance(v, tuple) else v

    missing = []
    for name, kwargs in rows:
        recipe = registry.get(name)
        defaults = {k: p.default for k, p in inspect.signature(recipe.cls).parameters.items()}
        defaults.update(recipe.defaults)
        for k, v in kwargs.items():
            if k in defaults and norm(defaults[k]) == norm(v):
                continue  # the registered default
            shown = v if isinstance(v, str) else json.dumps(norm(v), separators=(",", ":"))
            if f"--set {k}={shown}" not in readme:
                missing.append(f"{name}: --set {k}={shown}")
    assert not missing, missing


def test_the_gan_benchmark_trains_the_model_pyrogen_train_trains(tmp_path, capsys):
    # the benchmark's rows are the CLI's: the same seed gives the same parameters after a few steps
    import gan

    from pyrogen.cli import main
    from pyrogen.runs import load_run

    ours, _ = gan.train("wgan-gp", "8gaussians", {}, steps=6, seed=2)
    assert (
        main(
            [
                "train",
                "wgan-gp",
                "--data",
                "8gaussians",
                "--steps",
                "6",
                "--seed",
                "2",
                "--out",
                str(tmp_path / "r"),
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    theirs, _ = load_run(tmp_path / "r")
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    other, _ = gan.train("wgan-gp", "8gaussians", {}, steps=6, seed=3)  # and the comparison can fail
    assert any(not torch.allclose(other.state_dict()[k], a[k]) for k in a if a[k].is_floating_point())


def test_the_fresh_densities_exact_entropies_match_monte_carlo_over_their_own_densities():
    """Each closed-form entropy against -E log p over 200,000 draws of the same generator (five standard errors)."""
    import math

    import fresh_densities as F

    n, g, normal = 200_000, torch.Generator().manual_seed(3), torch.distributions.Normal
    x = F.sample("funnel", n, g)
    lps = {"funnel": normal(0, 3.0).log_prob(x[:, 0]) + normal(0, (x[:, 0] / 2).exp()).log_prob(x[:, 1])}
    x = F.sample("banana-units", n, g)
    x1, x2 = x[:, 0] / 100, x[:, 1] / 0.01
    lps["banana-units"] = normal(0, 1.0).log_prob(x1) + normal(x1**2 - 1, 0.3).log_prob(x2) - math.log(100 * 0.01)
    x = F.sample("copula-8d", n, g)
    even = torch.arange(8) % 2 == 0
    z = torch.empty_like(x)
    z[:, even], z[:, ~even] = torch.special.ndtri(-torch.expm1(-x[:, even])), 2 * x[:, ~even].log()
    r = F._corr()
    log_copula = -0.5 * torch.logdet(r) - 0.5 * ((z @ torch.linalg.inv(r)) * z).sum(1) + 0.5 * (z * z).sum(1)
    marginals = -x[:, even].sum(1) + torch.distributions.LogNormal(0.0, 0.5).log_prob(x[:, ~even]).sum(1)
    lps["copula-8d"] = log_copula + marginals
    x = F.sample("three-scales", n, g)
    lps["three-scales"] = F._mixture_log_prob(x)
    for name, lp in lps.items():
        h, se = F.entropy(name)
        assert abs(float(-lp.mean()) - h) < 5 * float(lp.std()) / math.sqrt(n) + 5 * se, name
    data = F.load_fresh("funnel")
    assert (len(data.train), len(data.val), len(data.test)) == (30_000, 5_000, 5_000)


def test_the_readme_lists_every_registered_model_as_the_registry_does():
    import model_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert model_table.table() in readme, "rerun python benchmarks/model_table.py and paste its table"


def test_no_file_refers_to_documents_outside_the_repository():
    """Design notes and course material are not in the repository: nothing may send a reader to them."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    banned = ("DESIGN" + ".md", "seed " + "00", "Hardening " + "item", "the seed" + "'s")
    hits = []
    for name in files:
        path = root / name
        if path.suffix not in (".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml", "") or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {b}" for b in banned if b in text]
    assert not hits, hits


def test_the_readme_example_runs(monkeypatch):
    """The front page's example, with fewer steps and one chain (the same code otherwise)."""
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    for old, new in (
        ("fit(flow, moons)", "fit(flow, moons, steps=20)"),
        ('num_samples=300, warmup_steps=300, num_chains=2, mp_context="spawn"', "num_samples=20, warmup_steps=20"),
    ):
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.setattr("builtins.print", lambda *a, **k: None)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["mcmc"].get_samples()["z"].shape == (20, 2)


def test_every_results_file_says_what_measured_each_section():
    import json

    for path in sorted((Path(__file__).resolve().parents[1] / "results").glob("*.json")):
        for section, entry in json.loads(path.read_text()).items():
            assert set(entry) == {"results", "measured"}, (path.name, section)
            assert {"command", "torch", "pyro", "machine", "threads", "date"} <= set(entry["measured"]), path.name


def test_every_link_and_figure_of_the_readme_and_docs_resolves():
    import re

    root = Path(__file__).resolve().parents[1]
    broken = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    assert not broken, broken


def test_a_stopped_run_s_logged_rows_are_read_back_and_rows_measured_again_replace_only_their_own(tmp_path):
    from _common import logged_rows, merged_rows

    log = tmp_path / "run.log"
    log.write_text(
        'train: 100%|###| 3/3 loss=1.0\n{"model": "nsf", "data": "funnel", "nll_nats": 3.9}\n'
        'a warning\n{"model": "zuko-nsf", "data": "funnel", "nll_nats": 46.9}\n{"not": "a row"}\n'
    )
    rows = logged_rows(log)
    assert [(r["model"], r["data"]) for r in rows] == [("nsf", "funnel"), ("zuko-nsf", "funnel")]
    old = [
        {"model": "nsf", "data": "funnel", "nll_nats": 47.7},
        {"model": "nsf", "data": "copula-8d", "nll_nats": 5.97},
    ]
    out = merged_rows(old, rows)
    assert {(r["model"], r["data"]): r["nll_nats"] for r in out} == {
        ("nsf", "funnel"): 3.9,
        ("zuko-nsf", "funnel"): 46.9,
        ("nsf", "copula-8d"): 5.97,
    }
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    with pytest.raises(SystemExit, match="no rows"):
        logged_rows(empty)


def test_rows_that_differ_by_seed_are_kept_and_paired_by_seed(tmp_path):
    import statistics

    from _common import logged_rows
    from pages import seed_table

    lines = []
    nsf = {0: 3.51, 1: 3.49, 2: 3.52}
    zuko = {0: 3.50, 1: 3.50, 2: 3.49}
    for seed in (0, 1, 2):
        lines.append(f'{{"model": "nsf", "data": "moons", "nll_nats": {nsf[seed]}, "seed": {seed}}}')
        lines.append(f'{{"model": "zuko-nsf", "data": "moons", "nll_nats": {zuko[seed]}, "seed": {seed}}}')
    lines.append('{"model": "nsf", "data": "digits", "bits_per_dim": 2.07, "nll_nats": -89.0, "seed": 0}')
    log = tmp_path / "run.log"
    log.write_text("\n".join(lines) + "\n")
    by_data = logged_rows(log, ("model", "data", "seed"))
    assert len(by_data) == 7
    assert len(logged_rows(log)) == 3  # by model and data alone, each seed's row replaces the one before
    (moons,) = seed_table(by_data)  # the digits have no zuko row to pair with
    paired = [nsf[s] - zuko[s] for s in (0, 1, 2)]
    assert moons["seeds"] == 3 and moons["unit"] == "nll_nats"
    assert moons["difference"] == pytest.approx(sum(paired) / 3)
    assert moons["difference_stderr"] == pytest.approx(statistics.stdev(paired) / 3**0.5)
    assert moons["nsf"] == pytest.approx(sum(nsf.values()) / 3)


def test_the_seeds_section_refuses_a_density_it_cannot_load(capsys):
    import flows

    with pytest.raises(SystemExit) as e:
        flows.main(["--only", "seeds", "--densities", "funnel"])
    assert e.value.code == 2 and "--densities for seeds: a toy or digits; got 'funnel'" in capsys.readouterr().err


def test_the_sequence_benchmark_s_lstm_baseline_samples_and_scores_frames():
    import math

    from sequence import FrameLSTM

    torch.manual_seed(0)
    m = FrameLSTM(3, state_dim=8, hidden=8)
    x = m.sample(4, 5)
    assert x.shape == (4, 5, 3)
    # the exact log-likelihood, frame by frame from the same network
    lp = torch.zeros(4)
    with torch.no_grad():
        for t in range(5):
            loc, scale = m._params(x[:, : t + 1])
            lp += torch.distributions.Normal(loc[:, t], scale[:, t]).log_prob(x[:, t]).sum(-1)
        torch.testing.assert_close(m.log_prob(x), lp)
    assert math.isfinite(float(lp.sum()))


def test_the_benchmark_pages_tables_are_their_results_files():
    # each marked table of docs/*.md is what benchmarks/pages.py renders from results/*.json: editing a results
    # file by hand (or a page's table) makes this fail until the page is written again from the results
    import json

    from pages import MARKER, TABLES, load_results, pages, render

    results = load_results()
    seen = set()
    for page in pages():
        text = page.read_text()
        assert render(text, results) == text, f"{page.name} is out of date: python benchmarks/pages.py"
        seen |= {m.group(2) for m in MARKER.finditer(text)}
    assert seen == set(TABLES), "every table is on a page"
    # the check can fail: one number changed in a results file changes the page
    tampered = json.loads(json.dumps(results))
    tampered["sequence"]["vrnn"][0]["iwae100_per_frame"] += 1.0
    page = (Path(__file__).resolve().parents[1] / "docs" / "sequence.md").read_text()
    assert render(page, tampered) != page


def test_the_figures_plot_the_results_files_and_are_on_a_page(tmp_path):
    # each figure of benchmarks/pages.py draws points read from results/*.json, is drawn without error, and a page
    # shows it
    from pages import FIGURES, load_results, pages, write_figures

    results = load_results()
    text = "".join(p.read_text() for p in pages())
    for name in FIGURES:
        assert f"figures/{name}.png" in text, name
    points = FIGURES["mnist_quality"][0](results)
    rows = {(s, r["model"]): r for s, rs in results["mnist"].items() for r in rs if "fid" in r}
    assert len(points) == len(rows) > 0
    for p in points:
        assert p["fid"] == rows[p["section"], p["model"]]["fid"]
        assert p.get("nll", rows[p["section"], p["model"]].get("nll_nats")) == rows[p["section"], p["model"]].get(
            "nll_nats"
        )
    speed = FIGURES["sampler_speed"][0](results)
    mcmc = results["mcmc"]["samplers"]
    for p in speed:
        (mine,) = [
            r for r in mcmc if (r["target"], r["chains"], r["sampler"]) == (p["target"], p["chains"], p["sampler"])
        ]
        (nuts,) = [
            r for r in mcmc if (r["target"], r["chains"]) == (p["target"], p["chains"]) and "NumPyro" in r["sampler"]
        ]
        assert p["ratio"] == pytest.approx(mine["ess_per_s"] / nuts["ess_per_s"])
    assert {(p["target"], p["chains"]) for p in speed} == {(r["target"], r["chains"]) for r in mcmc}
    written = write_figures(results, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.png" for n in FIGURES)
    assert all(p.stat().st_size > 10_000 for p in written)


def test_the_orderings_the_family_pages_state_hold_in_their_results_files():
    # the prose of docs/autoregressive.md and docs/classical.md states these orders of the measured rows
    from pages import load_results

    results = load_results()
    nll = {r["model"]: r["nll_nats"] for r in results["autoregressive"]["digits_binary"]}
    assert nll["fvsbn"] > nll["nade"] > nll["made"] > nll["pixelcnn"]
    assert nll["pixelrnn"] < nll["pixelcnn"] < nll["pixelrnn"] + 0.3  # ahead, within one standard error
    floor = results["autoregressive"]["floors"]["factorized Bernoulli"]
    assert max(nll.values()) < floor
    hmm = results["classical"]["hmm"]
    rnn = next(r for r in results["autoregressive"]["text"] if r["model"] == "char-rnn")
    bits = sorted(r["test_bits_per_char"] for r in hmm["hmm"])
    assert hmm["unigram"] > hmm["bigram"] > bits[-1] >= bits[0] > rnn["bits_per_char"]
    # docs/diffusion.md: the SDE's likelihood beats every flow's, DDIM improves with steps, guidance trades FID
    # for label agreement, RePaint completes better than replacement, the VAE and the EBM prior
    diffusion = results["diffusion"]
    digits = {r["variant"]: r for r in diffusion["digits"]}
    sde = digits["vp-sde probability flow"]["bits_per_dim"]
    assert sde < digits["ddpm ancestral (1000 steps)"]["bits_per_dim"]
    assert sde < min(r["bits_per_dim"] for r in results["flows"]["digits"])
    assert digits["ddim 10 steps"]["fid"] > digits["ddim 100 steps"]["fid"]
    guided = sorted(diffusion["guidance"], key=lambda r: r["guidance"])
    assert guided[0]["label_agreement"] < guided[-1]["label_agreement"] and guided[0]["fid"] < guided[-1]["fid"]
    completion = diffusion["inpainting"]["repaint_pixel_accuracy"]
    assert completion > diffusion["inpainting"]["replace_pixel_accuracy"]
    assert completion > results["latent"]["uses"]["impute_bottom_half_pixel_accuracy"]
    assert completion > results["ebm"]["uses"]["completion_nuts_pixel_accuracy"]
    # text to image: strong unguided (at least 98.5% of samples as asked), every share 99.5% or above from w = 1
    text = sorted(diffusion["text"], key=lambda r: r["guidance"])
    shares = ("label_agreement", "thickness_agreement", "size_agreement", "slant_agreement")
    assert all(text[0][k] >= 0.985 and text[1][k] >= 0.995 and text[1][k] > text[0][k] for k in shares)
    assert text[-1]["fid_ci"][0] < text[0]["fid_ci"][1]  # the FID's intervals overlap across guidance
    # docs/images.md, the real-images acceptance: the literature's order with the convolutional VAEs, at most 95 nats
    # binarized and 1.40 bits/dim dequantized, the EBM's FID within twice the VAE's, a GAN's below every likelihood
    # model's
    mnist = {s: {r["model"]: r for r in rows} for s, rows in results["mnist"].items()}
    order = [mnist["binarized"][m]["nll_nats"] for m in ("fvsbn", "nade", "vae-conv", "iwae-conv", "pixelcnn")]
    assert order == sorted(order, reverse=True) and order[-1] <= 95
    assert min(r["bits_per_dim"] for r in mnist["dequantized"].values()) <= 1.40
    assert mnist["samples"]["ebm"]["fid"] <= 2 * mnist["binarized"]["vae"]["fid"]
    likelihood = [r["fid"] for s in ("binarized", "dequantized") for r in mnist[s].values() if "fid" in r]
    assert min(r["fid"] for m, r in mnist["samples"].items() if "gan" in m or m in ("ddpm", "score-sde")) < min(
        likelihood
    )


def test_a_finished_section_is_saved_before_the_next_one_starts(tmp_path, monkeypatch):
    # keep() files each section as it finishes, so a run killed in a later section keeps the earlier ones
    import json

    import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["bench.py", "--only", "a", "b"])
    out: dict = {}
    _common.keep(out, "a", [{"model": "m", "nll": 1.0}])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["a"]["results"] == [{"model": "m", "nll": 1.0}] and out == {"a": [{"model": "m", "nll": 1.0}]}
    _common.keep(out, "b", {"x": 2})
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert set(saved) == {"a", "b"} and "machine" in saved["b"]["measured"]
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick"])
    _common.keep(out, "c", 3)  # a smoke run saves nothing
    assert "c" not in json.loads((tmp_path / "bench.json").read_text()) and out["c"] == 3


def test_the_sample_grids_have_a_row_per_model_and_the_test_digits_and_are_on_their_family_pages(tmp_path):
    # a smoke run of benchmarks/grids.py draws one figure per family; each family page shows its grid
    import grids
    from matplotlib.image import imread

    assert grids.main(["--quick", "--only", "classical", "--out", str(tmp_path)]) == 0
    image = imread(tmp_path / "samples_classical.png")
    dark = (image[..., :3].mean(-1) < 0.5).any(1)  # rows of the picture that hold a digit's dark pixels
    assert dark.sum() > 8 * (len(grids.FAMILIES["classical"]) + 1)  # every row of 8-pixel-high digits drawn
    docs = Path(__file__).resolve().parents[1] / "docs"
    for family in grids.FAMILIES:
        assert f"figures/samples_{family}.png" in (docs / f"{family}.md").read_text(), family


def test_the_speed_benchmarks_step_the_trainer_as_fit_does():
    # run.py and gpu_check.py time the trainer's own step; both once passed the model's old forward(batch, group)
    # and failed with a TypeError after the objectives moved out of the models. One step of each must train.
    import gpu_check
    import run as step_bench

    from pyrogen.models import VAE

    torch.manual_seed(0)
    model = VAE(event_shape=(1, 8, 8), latent_dim=2, hidden=(8,), kl_warmup=0)
    before = [p.detach().clone() for p in model.parameters()]
    step_bench._pyrogen_step(model, torch.bernoulli(torch.full((32, 1, 8, 8), 0.4)), 16, 1e-2)(0)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    row = gpu_check.two_group_step("cpu", steps=2)
    assert row["name"] == "wgan-gp-2d-b256" and row["ratio"] > 0


def test_the_mnist_benchmark_keeps_each_row_s_samples_and_draws_a_grid_per_section(tmp_path):
    # the kept samples are the grey levels of the model's first 16 draws; a section's grid has a row per kept model
    # and the test digits, and the real-images page shows every section's grid that the results hold
    import inspect

    import mnist
    from matplotlib.image import imread

    torch.manual_seed(0)
    x = torch.rand(20, 1, 28, 28)
    path = mnist.keep_samples("vae", x, "unit_interval", folder=tmp_path)
    kept = np.load(path)
    assert kept.shape == (16, 28, 28) and kept.dtype == np.uint8
    assert np.abs(kept / 255 - x[:16, 0].numpy()).max() <= 0.5 / 255 + 1e-6
    mnist.keep_samples("fvsbn", (x > 0.5).float(), "binary", folder=tmp_path)
    assert inspect.signature(mnist.draw_grids).parameters["folder"].default == mnist.KEPT  # where the rows keep them
    (figure,) = mnist.draw_grids(folder=tmp_path, out=tmp_path)
    assert figure.name == "mnist_samples_binarized.png"
    assert imread(figure).shape[0] > imread(figure).shape[1] / 16 * 2.5  # three rows of 16 digits
    page = (Path(__file__).resolve().parents[1] / "docs" / "images.md").read_text()
    for section in mnist.SECTIONS:
        if any((mnist.KEPT / f"{m}.npy").exists() for m in mnist.MODELS[section]):
            assert f"figures/mnist_samples_{section}.png" in page, section


def test_zuko_sees_the_digits_as_pyrogens_flows_do():
    # the change of variables zuko's NSF is scored through: its log-determinant is the autograd Jacobian's (the map
    # is elementwise, so the diagonal), and pyrogen's NSF with its layers removed gives the same density
    import flows

    from pyrogen.data import load
    from pyrogen.models import registry

    data = load("digits")
    x = data.test[:5].double()
    to_flow = flows._zuko_units(data)
    y, log_det = to_flow(x, False)
    dy = torch.autograd.functional.jacobian(lambda t: to_flow(t, False)[0], x[0]).reshape(64, 64)
    torch.testing.assert_close(log_det[0], dy.diagonal().abs().log().sum())
    assert torch.count_nonzero(dy - torch.diag(dy.diagonal())) == 0
    nsf = registry.get("nsf").from_dataset(data).double()
    nsf.layers = lambda *a: []  # type: ignore[method-assign]  # only the reshape and the logit pre-processing left
    base = torch.distributions.Normal(0.0, 1.0).log_prob(y).sum(-1)
    torch.testing.assert_close(nsf.log_prob(x), base + log_det)
    y_train, _ = to_flow(x, True)  # training batches are dequantized afresh, within each grey level's bin
    x_train = (torch.sigmoid(y_train) - 0.05) / 0.9
    assert not torch.allclose(x_train, x.flatten(1))
    assert torch.equal(torch.floor(x_train * 17), torch.floor(x.flatten(1) * 17))


def test_dequantize_keeps_each_value_in_its_bin_and_refuses_bad_levels():
    from pyrogen.inference.objectives import dequantize

    x = torch.arange(17.0) / 17
    y = dequantize(x.expand(200, 17), 17)
    assert torch.equal(torch.floor(y * 17), torch.floor(x * 17).expand(200, 17))
    assert 0.4 < float((y * 17 - torch.floor(y * 17)).mean()) < 0.6  # uniform within the bin
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="levels"):
            dequantize(x, bad)  # type: ignore[arg-type]
