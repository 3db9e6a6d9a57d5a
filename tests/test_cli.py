import json
import subprocess
import sys

import numpy as np
import pytest

from pyrogen.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "pyrogen.cli", *args], capture_output=True, text=True, timeout=600)


def test_list_prints_every_model(capsys):
    from pyrogen.models import registry

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        cls = registry.get(name)
        assert any(line.split() == [name, cls.family, cls.density, cls.default_data] for line in out.splitlines())


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
        (["train", "gan", "--data", "moons"], "unknown model 'gan'"),
        (["train", "fvsbn", "--data", "moons"], "bernoulli conditionals; dataset 'moons' is real"),
        (["train", "vae", "--data", "moons", "--set", "likelihood=bernoulli"], "models binary data; dataset 'moons'"),
        (["train", "vae", "--set", "bogus=1"], "unexpected keyword argument 'bogus'"),
        (["train", "vae", "--set", "latent_dim"], "--set takes KEY=VALUE"),
        (["train", "realnvp", "--data", "mnist"], "invalid choice: 'mnist'"),
        (["train", "realnvp", "--steps", "0"], "steps must be a positive integer; got 0"),
        (["evaluate", "/nonexistent/run"], "is not a run directory"),
        (["sample", "/nonexistent/run", "--out", "x.png"], "is not a run directory"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, tmp_path):
    r = _run(*args, "--out", str(tmp_path / "o")) if args[0] == "train" else _run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert message in lines[0]


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
