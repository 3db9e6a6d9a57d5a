import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import cli

from pyrogen.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "pyrogen.cli", *args], capture_output=True, text=True, timeout=600)


def test_list_prints_every_model(capsys):
    from pyrogen.models import registry

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        cls = registry.get(name)
        assert any(line.split() == [name, cls.family, cls.density, cls.data] for line in out.splitlines())


@pytest.mark.parametrize("cmd", [[], ["list"], ["train"], ["sample"], ["evaluate"], ["demo"]])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0 and "usage: pyrogen" in capsys.readouterr().out


def test_train_evaluate_sample_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "realnvp", "--data", "moons", "--steps", "40", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"model", "data", "density", "n", "nll_nats", "nll_stderr"} <= set(m)
    assert m["model"] == "realnvp" and m["data"] == "moons" and m["n"] == 5000
    assert m == json.loads((run / "metrics.json").read_text())
    assert main(["sample", str(run), "-n", "100", "--out", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["samples"].shape == (100, 2)
    assert main(["sample", str(run), "-n", "100", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    # training again into the same directory needs --resume; with it, the run continues
    assert main(["train", "realnvp", "--data", "moons", "--steps", "40", "--out", str(run), "-q"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "realnvp",
                "--data",
                "moons",
                "--steps",
                "60",
                "--out",
                str(run),
                "-q",
                "--resume",
            ]
        )
        == 0
    )
    from pyrogen.io import load_checkpoint

    _, meta = load_checkpoint(run / "model.safetensors")
    assert meta["result"]["step"] == 60 and meta["model"] == "realnvp"


def test_latent_model_reports_iwae_and_elbo(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", "vae", "--steps", "30", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--iwae-k", "20"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["k"] == 20 and "elbo_nats" in m and "bits_per_dim" in m and m["density"] == "lower_bound"
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "grid.png")]) == 0


@pytest.mark.slow
def test_model_arguments_and_labelled_models_through_the_cli(tmp_path):
    """``--set`` reaches the model; a labelled model trains and is scored on (examples, labels)."""
    run = tmp_path / "cat"
    args = ["train", "vae", "--data", "digits-int", "--set", "likelihood=categorical", "--set", "hidden=[16]"]
    assert main([*args, "--steps", "5", "--out", str(run), "-q"]) == 0
    config = json.loads((run / "run.json").read_text())["model_config"]
    assert config["likelihood"] == "categorical" and config["hidden"] == [16] and config["levels"] == 17
    run = tmp_path / "cvae"
    assert main(["train", "cvae", "--set", "hidden=[16]", "--steps", "5", "--out", str(run), "-q"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["model"] == "cvae" and m["n"] == 360 and m["nll_nats"] > 0
    assert main(["sample", str(run), "-n", "5", "--label", "3", "--out", str(tmp_path / "threes.npz")]) == 0
    assert np.load(tmp_path / "threes.npz")["samples"].shape == (5, 1, 8, 8)
    assert main(["sample", str(run), "-n", "5", "--label", "12", "--out", str(tmp_path / "bad.npz")]) == 2
    assert main(["sample", str(tmp_path / "cat"), "--label", "3", "--out", str(tmp_path / "x.npz")]) == 2
    run = tmp_path / "ssvae"
    assert main(["train", "ssvae", "--set", "hidden=[16]", "--steps", "5", "--out", str(run), "-q"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= m["accuracy"] <= 1.0 and "accuracy" not in json.loads(
        (tmp_path / "cvae" / "metrics.json").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "gann", "--data", "moons"], "unknown model 'gann'"),
        (["train", "fvsbn", "--data", "moons"], "bernoulli conditionals; dataset 'moons' is real"),
        (["train", "vae", "--data", "moons", "--set", "likelihood=bernoulli"], "models binary data; dataset 'moons'"),
        (["train", "vae", "--set", "bogus=1"], "unexpected keyword argument 'bogus'"),
        (["train", "vae", "--set", "latent_dim"], "--set takes KEY=VALUE"),
        (["train", "realnvp", "--data", "cifar10"], "unknown dataset 'cifar10'"),
        (["train", "realnvp", "--data", "x.pkl"], "unknown dataset 'x.pkl'"),
        (["train", "realnvp", "--data", "missing.npy"], "data file 'missing.npy' does not exist"),
        (["train", "realnvp", "--steps", "0"], "steps must be a positive integer; got 0"),
        (["evaluate", "/nonexistent/run"], "is not a run directory"),
        (["sample", "/nonexistent/run", "--out", "x.png"], "is not a run directory"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, tmp_path, capsys):
    code, err = cli(capsys, *args, "--out", tmp_path / "o") if args[0] == "train" else cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0]


def test_the_command_itself_exits_2_with_one_line(tmp_path):
    """The same through a new interpreter, as a shell runs it (``python -m pyrogen.cli``)."""
    r = _run("train", "realnvp", "--steps", "0", "--out", str(tmp_path / "o"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("pyrogen: error: "), r.stderr
    assert lines[0].endswith("steps must be a positive integer; got 0")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_demo_fast(tmp_path):
    r = _run("demo", "--fast", "--out", str(tmp_path), "-q")
    assert r.returncode == 0, r.stderr
    assert "test NLL" in r.stdout and "r_hat" in r.stdout and "IWAE (k=1000)" in r.stdout
    for f in (
        "realnvp_moons_samples.png",
        "vae_digits_samples.png",
        "loss_curves.png",
        "metrics.json",
    ):
        assert (tmp_path / f).is_file(), f


def test_character_model_reports_bits_per_character(tmp_path, capsys):
    run = tmp_path / "rnn"
    assert main(["train", "char-rnn", "--steps", "2", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["data"] == "text" and m["bits_per_char"] == pytest.approx(m["nll_nats"] / (128 * np.log(2)))
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s.txt")]) == 0
    text = (tmp_path / "s.txt").read_text(encoding="utf-8")
    from pyrogen.data import load

    assert len(text) == 2 * 128 + 3 and set(text) <= set(load("text").vocab) | {"\n"}  # two samples, a blank line
    assert main(["train", "fvsbn", "--data", "text", "--steps", "2", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "fvsbn offers bernoulli conditionals; dataset 'text' is integer" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "flow"
    assert main(["train", "realnvp", "--data", "moons", "--steps", "10", "--out", str(run), "-q"]) == 0
    return run


def _bad_invocations(run, tmp):
    (tmp / "a-file").write_text("x")
    (tmp / "a-dir").mkdir()
    for name, content in (("badjson", "{not json"), ("alist", "[1, 2]"), ("nokey", '{"model": "realnvp"}')):
        (tmp / name).mkdir()
        (tmp / name / "run.json").write_text(content)
    # data files a user might hand over
    (tmp / "garbage.safetensors").write_bytes(b"\xff" * 64)
    np.save(tmp / "five.npy", np.random.default_rng(0).normal(size=(5, 2)))
    np.save(tmp / "three.npy", np.random.default_rng(0).normal(size=(3, 2)))
    np.save(tmp / "complex.npy", np.ones((20, 2)) + 1j)
    (tmp / "empty.csv").write_text("")
    np.save(tmp / "strings.npy", np.array([["a", "b"]] * 20))
    np.save(tmp / "dates.npy", np.array(["2020-01-01"] * 20, dtype="datetime64[D]").reshape(10, 2))
    np.save(tmp / "records.npy", np.zeros(20, dtype=[("a", "f4"), ("b", "f4")]))
    (tmp / "pickled.npy").write_bytes(pickle.dumps({"a": 1}))
    np.save(tmp / "levels.npy", np.array([[0, 10**12]] * 20))
    np.save(tmp / "wide.npy", np.zeros((3, 300_000), dtype=np.float32))
    r, new = str(run), str(tmp / "new")
    files = [
        ("garbage.safetensors", "cannot be read: Error while deserializing header"),
        ("five.npy", "5 examples split into 1 for training, 2 for validation and 2 for testing"),
        ("three.npy", "3 examples split into 0 for training"),
        ("complex.npy", "must be real numbers (bool, int or float); got dtype complex128"),
        ("empty.csv", "cannot be read: loadtxt: input contained no data"),
        ("strings.npy", "got dtype <U1"),
        ("dates.npy", "got dtype datetime64[D]"),
        ("records.npy", "must be real numbers"),
        ("pickled.npy", "pickled objects are never loaded"),
        ("levels.npy", "at most 65536 levels"),
        ("wide.npy", "hold 300,000 values each; at most 262,144"),
    ]
    return [
        *[(["train", "realnvp", "--data", str(tmp / f), "--out", new], m) for f, m in files],
        (["train", "realnvp", "--out", new, "--seed", "-1"], "--seed must be an integer in [0, 2**32); got -1"),
        (["sample", r, "--out", str(tmp / "b.npz"), "-n", "100000000"], "-n must be at most 1,000,000 samples"),
        (["train", "realnvp", "--out", str(tmp / "a-file")], "is an existing file"),
        (["train", "realnvp", "--out", new, "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
        (["train", "realnvp", "--out", new, "--device", "meta"], "--device must be cpu, cuda or cuda:N"),
        (["train", "realnvp", "--out", new, "--device", "cuda:7"], "--device 'cuda:7'"),
        (["train", "realnvp", "--out", new, "--steps", "0"], "steps must be a positive integer; got 0"),
        (["train", "realnvp", "--out", new, "--lr", "-1"], "lr must be a positive finite number; got -1.0"),
        (["train", "realnvp", "--out", new, "--checkpoint-every", "-2"], "checkpoint_every must be a non-negative"),
        (["train", "realnvp", "--out", new, "--patience", "0"], "patience must be a positive integer"),
        (["train", "realnvp", "--out", new, "--set", "hidden=[true]"], "hidden must be a sequence of positive"),
        (["train", "realnvp", "--out", new, "--set", "hidden=[100000,100000]"], "more than the limit"),
        (["train", "realnvp", "--data", "moons", "--out", r], "already holds a run; pass --resume"),
        (["train", "realnvp", "--data", "moons", "--out", r, "--resume", "--seed", "3"], "--seed 3 (the run's is 0)"),
        (["train", "realnvp", "--out", r, "--resume", "--set", "num_layers=3"], "--set num_layers=3"),
        (["train", "realnvp", "--out", r, "--resume", "--data", "rings"], "--data 'rings' (the run's is 'moons')"),
        (["train", "maf", "--out", r, "--resume"], "model 'maf' (the run's is 'realnvp')"),
        (["evaluate", r, "--iwae-k", "0"], "--iwae-k must be a positive integer; got 0"),
        (["evaluate", r, "--samples", "1"], "--samples must be an integer of at least 2"),
        (["evaluate", r, "--device", "cuda:7"], "--device 'cuda:7'"),
        (["evaluate", r, "--device", "tpu"], "--device must be cpu"),
        (["evaluate", str(tmp / "badjson")], "run.json is not valid JSON"),
        (["evaluate", str(tmp / "alist")], "run.json must hold a JSON object; got list"),
        (["evaluate", str(tmp / "nokey")], "run.json lacks the key 'model_config'"),
        (["evaluate", str(tmp / "nothing")], "is not a run directory"),
        (["sample", r, "--out", "s.jpg"], "--out must end in .png, .npz or .txt"),
        (["sample", r, "--out", "sub/dir/x.jpg"], "--out must end in .png, .npz or .txt"),
        (["sample", r, "--out", str(tmp / "a-dir")], "must end in .png"),
        (["sample", r, "--out", str(tmp / "b.npz"), "-n", "0"], "-n must be a positive integer; got 0"),
        (["sample", r, "--out", str(tmp / "b.npz"), "--device", "tpu"], "--device must be cpu"),
        (["sample", r, "--out", str(tmp / "b.txt")], "only models of the text dataset write .txt"),
        (["sample", r, "--out", str(tmp / "b.npz"), "--label", "1"], "--label needs a class-conditional model"),
        (["demo", "--out", str(tmp / "a-file"), "--fast"], "a-file"),
        (["--threads", "0", "list"], "--threads must be a positive integer; got 0"),
    ]


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_every_bad_invocation_is_one_line_and_creates_nothing(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cases = _bad_invocations(trained_run, tmp_path)
    before, run_before = _tree(tmp_path), _tree(trained_run)
    for args, message in cases:
        code = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (args, err)
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], (args, err)
        assert _tree(tmp_path) == before, args
        assert _tree(trained_run) == run_before, args


def test_a_refused_resume_leaves_run_json_as_it_was(trained_run, capsys):
    # before: `--resume --lr 0.5` on a run trained at another lr exited 2, yet run.json said lr 0.5
    before = (trained_run / "run.json").read_bytes()
    code = main(["train", "realnvp", "--out", str(trained_run), "--resume", "--lr", "0.5", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lr" in err[0], err
    assert (trained_run / "run.json").read_bytes() == before


def test_sample_writes_exactly_the_named_file_and_evaluation_is_repeatable(trained_run, tmp_path, capsys):
    assert main(["sample", str(trained_run), "-n", "7", "--out", str(tmp_path / "s.NPZ")]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["s.NPZ"]
    assert np.load(tmp_path / "s.NPZ")["samples"].shape == (7, 2)
    capsys.readouterr()
    outs = []
    for _ in range(2):
        assert main(["evaluate", str(trained_run), "--json", "--samples", "300"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1] and {"mmd", "c2st"} <= set(outs[0])
    assert outs[0]["mmd"]["ci"][0] <= outs[0]["mmd"]["value"] <= outs[0]["mmd"]["ci"][1]


def test_a_crafted_checkpoint_header_is_detected(trained_run, tmp_path):
    """The digest covers the JSON metadata too: a checkpoint whose recorded step was edited fails to load."""
    import shutil

    from pyrogen.inference import latest_checkpoint
    from pyrogen.io import CheckpointError, load_checkpoint

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    ckpt = latest_checkpoint(run)
    blob = ckpt.read_bytes()
    assert b'\\"step\\": 10' in blob
    ckpt.write_bytes(blob.replace(b'\\"step\\": 10', b'\\"step\\": 7 '))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(ckpt)


def test_a_diverged_run_is_one_line_and_leaves_no_nan_checkpoint(tmp_path, capsys):
    run = tmp_path / "div"
    code = main(["train", "realnvp", "--data", "moons", "--steps", "200", "--lr", "1e6", "--out", str(run), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lower lr" in err[0], err
    from pyrogen.runs import load_run

    if (run / "run.json").is_file():  # a good checkpoint was written before it diverged: it loads and is finite
        model, _ = load_run(run)
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_run_written_by_fit_alone_opens_with_the_best_parameters(tmp_path):
    from conftest import small_data, small_model

    from pyrogen.inference import fit
    from pyrogen.runs import load_run

    m = small_model("realnvp")
    x = small_data("realnvp", 300)
    fit(m, x[:256], x[256:], steps=40, batch_size=64, val_every=10, checkpoint_every=40, out=tmp_path)
    loaded, run = load_run(tmp_path)
    assert run["model"] == "realnvp"
    from pyrogen.runs import evaluate_run

    assert evaluate_run(tmp_path, data_name="moons", samples=100)["model"] == "realnvp"
    for k, v in m.state_dict().items():  # what fit returned (restore_best), not the last step's
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_a_valid_checkpoint_of_another_model_is_one_line(trained_run, tmp_path, capsys):
    """A checksum-valid checkpoint of another model is refused with one line, on resume and load."""
    import shutil

    other = tmp_path / "maf"
    assert main(["train", "maf", "--data", "moons", "--steps", "10", "--out", str(other), "-q"]) == 0
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    for f in run.glob("ckpt-*.safetensors"):
        f.unlink()
    for f in other.glob("ckpt-*.safetensors"):
        shutil.copy(f, run / f.name)
    shutil.copy(other / "model.safetensors", run / "model.safetensors")
    capsys.readouterr()
    code = main(["train", "realnvp", "--data", "moons", "--steps", "20", "--out", str(run), "--resume", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not fit this model" in err[0], err
    code = main(["evaluate", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not hold parameters of realnvp" in err[0], err


@pytest.mark.slow
def test_diffusion_models_through_the_cli(tmp_path, capsys):
    """Train DDPM on the digits, evaluate its bound in bits/dim, sample it by DDIM with a chosen number of steps;
    sampler options that a model does not take are one line naming the flag."""
    run = tmp_path / "ddpm"
    args = ["train", "ddpm", "--data", "digits", "--steps", "20", "--out", str(run), "-q", "--set", "timesteps=20"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--samples", "50"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["density"] == "lower_bound" and "k" not in m and m["elbo_nats"] == -m["nll_nats"]
    assert m["bits_per_dim"] > 0 and {"fid", "kid", "precision", "recall"} <= set(m)
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "-n", "6", "--out", str(out), "--sampler", "ddim", "--steps", "5"]) == 0
    x = np.load(out)["samples"]
    assert x.shape == (6, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    for extra, message in (
        (["--sampler", "ode"], "--sampler: sampler must be one of ancestral, ddim; got 'ode'"),
        (["--steps", "21", "--sampler", "ddim"], "steps must be at most the model's 20 timesteps; got 21"),
        (["--guidance", "2"], "--guidance needs --label"),
    ):
        code, err = cli(capsys, "sample", run, "-n", "2", "--out", tmp_path / "t.npz", *extra)
        assert code != 0 and message in err and "Traceback" not in err, err
    flow = tmp_path / "flow"
    assert main(["train", "realnvp", "--data", "moons", "--steps", "5", "--out", str(flow), "-q"]) == 0
    code, err = cli(capsys, "sample", flow, "-n", "2", "--out", tmp_path / "f.npz", "--sampler", "ddim")
    assert code != 0 and "--sampler: realnvp takes no such sampler option (it takes: none)" in err
    assert not (tmp_path / "t.npz").exists() and not (tmp_path / "f.npz").exists()


def test_an_ebm_samples_with_any_kernel_of_the_table_from_the_cli(tmp_path, capsys):
    """``--kernel`` names a kernel of the one table EBM.sample reads; an unknown name is one line listing them."""
    run = tmp_path / "ebm"
    assert main(["train", "ebm", "--data", "8gaussians", "--steps", "5", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    for kernel in ("mala", "chees"):
        out = tmp_path / f"{kernel}.npz"
        assert main(["sample", str(run), "-n", "5", "--out", str(out), "--kernel", kernel, "--steps", "6"]) == 0
        assert np.load(out)["samples"].shape == (5, 2)
    code, err = cli(capsys, "sample", run, "-n", "2", "--out", tmp_path / "n.npz", "--kernel", "nuts")
    assert code != 0 and "kernel must be one of 'langevin', 'mala'" in err and "got 'nuts'" in err
    assert "Traceback" not in err and not (tmp_path / "n.npz").exists()


def test_the_default_thread_count_leaves_busy_cores_alone(monkeypatch):
    """Torch's default (every core) made a small VAE 6x slower on a busy 2-core machine."""
    from pyrogen import cli

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    for load, threads in ((0.1, 2), (1.2, 1), (1.99, 1), (5.0, 1)):
        monkeypatch.setattr(cli.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert cli.default_threads() == threads, load
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert cli.default_threads() == 13
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert cli.default_threads() is None  # the user's choice stands


def test_an_undefined_number_is_written_as_null_never_as_nan(tmp_path):
    import json

    from pyrogen.runs import _write_json

    _write_json(tmp_path / "m.json", {"mmd": {"value": 0.1, "ci": [float("nan"), float("inf")]}, "n": 2})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"mmd": {"value": 0.1, "ci": [None, None]}, "n": 2}


def test_a_class_conditional_flow_trains_samples_and_scores_from_the_cli(tmp_path):
    from pyrogen.runs import sample_run, train_run

    model, data, metrics = train_run(
        "maf", "digits", tmp_path / "cmaf", steps=5, model_kwargs={"conditional": True, "num_layers": 1}
    )
    assert model.classes == 10 and model.labelled
    assert metrics["density"] == "exact" and math.isfinite(metrics["nll_nats"]) and "fid" in metrics
    out = sample_run(tmp_path / "cmaf", 3, tmp_path / "s.npz", label=4)
    assert out.exists()


@pytest.mark.parametrize("exists", [False, True])
def test_resume_of_a_folder_without_a_run_says_it_starts_afresh(tmp_path, capsys, exists):
    run = tmp_path / "nothing-here"
    if exists:
        run.mkdir()
    args = ["train", "gmm", "--data", "moons", "--steps", "2", "--out", str(run), "--resume", "-q"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "--resume" in err and "starting a fresh run" in err and str(run) in err
    assert (run / "run.json").is_file()
    # a folder that holds a run resumes without the notice
    assert main([*args[:5], "4", *args[6:]]) == 0
    assert "fresh run" not in capsys.readouterr().err


def test_a_bayes_net_on_a_users_file_needs_its_structure(tmp_path, capsys):
    # before: a 4-column file failed with "event_shape must be (5,)" and a 5-column one trained silently on the
    # student network's graph
    rng = np.random.default_rng(0)
    for cols in (4, 5):
        path = tmp_path / f"rows{cols}.npy"
        np.save(path, rng.integers(0, 2, size=(300, cols)))
        assert (
            main(["train", "bayes-net", "--data", str(path), "--steps", "2", "--out", str(tmp_path / f"r{cols}")]) == 2
        )
        err = capsys.readouterr().err
        assert "--set nodes=" in err and err.count("\n") == 1, err
        assert not (tmp_path / f"r{cols}").exists()
    nodes = json.dumps([{"name": "a", "states": 2, "parents": []}, {"name": "b", "states": 2, "parents": ["a"]}])
    path = tmp_path / "rows2.npy"
    np.save(path, rng.integers(0, 2, size=(300, 2)))
    args = ["train", "bayes-net", "--data", str(path), "--steps", "2", "--out", str(tmp_path / "r2"), "-q"]
    assert main([*args, "--set", f"nodes={nodes}"]) == 0


def test_a_data_files_split_is_set_by_flags_recorded_and_reused(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "blob.npy"
    np.save(path, rng.normal(size=(400, 2)).astype(np.float32))
    run = tmp_path / "run"
    base = ["train", "gmm", "--data", str(path), "--out", str(run), "-q"]
    assert main([*base, "--steps", "4", "--val-fraction", "0.2", "--test-fraction", "0.3"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 120  # the test part: 30% of 400
    assert json.loads((run / "run.json").read_text())["split"] == {"val_fraction": 0.2, "test_fraction": 0.3}
    assert main(["evaluate", str(run), "--json"]) == 0  # the run's own split, not the default one
    assert json.loads(capsys.readouterr().out)["n"] == 120
    assert main([*base, "--steps", "6", "--resume"]) == 0  # resuming keeps it
    capsys.readouterr()
    assert main([*base, "--steps", "8", "--resume", "--test-fraction", "0.1"]) == 2
    assert "split" in capsys.readouterr().err
    # a bundled dataset has fixed parts; a fraction out of range is named
    assert main(["train", "gmm", "--data", "moons", "--val-fraction", "0.2", "--out", str(tmp_path / "b")]) == 2
    assert "val_fraction" in capsys.readouterr().err
    assert main([*base[:4], "--out", str(tmp_path / "c"), "--test-fraction", "1.5"]) == 2
    assert "test_fraction" in capsys.readouterr().err


def test_a_wide_data_file_is_refused_with_the_size_and_the_override(tmp_path, capsys):
    # before: a 10 x 250,000 file built a 64-million-parameter DDPM that trained for minutes on 2 cores
    path = tmp_path / "wide.npy"
    np.save(path, np.random.default_rng(0).normal(size=(10, 250_000)).astype(np.float32))
    out = tmp_path / "r"
    assert main(["train", "ddpm", "--data", str(path), "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parameters" in err and "--max-parameters 20,000,000" in err and "--set" in err
    assert not out.exists()
    assert main(["train", "ddpm", "--data", str(path), "--out", str(out), "--max-parameters", "0"]) == 2
    assert "--max-parameters must be a positive integer" in capsys.readouterr().err


def test_every_registered_default_is_far_below_the_parameter_limit():
    from pyrogen.data import load
    from pyrogen.models import registry
    from pyrogen.runs import DEFAULT_MAX_PARAMETERS

    sizes = {}
    for name in registry.names():
        recipe = registry.get(name)
        model = recipe.from_dataset(load(recipe.data))
        sizes[name] = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert max(sizes.values()) < DEFAULT_MAX_PARAMETERS / 10, max(sizes.items(), key=lambda kv: kv[1])


def test_image_rows_draws_a_row_per_label_and_refuses_rows_of_other_sizes(tmp_path):
    import matplotlib.image as mpimg

    from pyrogen.figures import image_rows

    ones = torch.ones(4, 1, 8, 8)
    image_rows([("a", ones), ("b", torch.zeros(4, 1, 8, 8))], tmp_path / "two.png")
    image_rows([("a", ones), ("b", ones), ("c", ones), ("d", ones)], tmp_path / "four.png")
    two, four = mpimg.imread(tmp_path / "two.png"), mpimg.imread(tmp_path / "four.png")
    assert 1.6 < four.shape[0] / two.shape[0] < 2.4  # the height grows with the rows, the width does not
    assert abs(four.shape[1] - two.shape[1]) <= 2
    for bad in ([], [("a", ones), ("b", torch.ones(3, 1, 8, 8))], [("a", torch.ones(8, 8))]):
        with pytest.raises(ValueError, match="row"):
            image_rows(bad, tmp_path / "bad.png")
