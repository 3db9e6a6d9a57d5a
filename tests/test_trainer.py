import pyro
import pytest
import torch
from conftest import CrashAt, Spy, small_data, small_model
from torch import nn

from pyrogen.inference import Objective, TrainConfig, fit, latest_checkpoint, objective_for
from pyrogen.io import CheckpointError
from pyrogen.models import GenerativeModel


def _params(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize(
    "name, options",
    # the DBM is cut where its joint phase (persistent chains started from the data) begins
    [("realnvp", {}), ("vae", {}), ("dbm", {"pretrain_steps": 10})],
)
def test_resumed_run_equals_uninterrupted_run(tmp_path, name, options, device):
    """Interrupted at step N and resumed to 2N == an uninterrupted 2N-step run, bit for bit."""
    from conftest import SMALL

    from pyrogen.models import registry

    def small_model(name):
        pyro.set_rng_seed(0)
        return registry.create(name, **{**SMALL[name], **options})

    x, v = small_data(name, 300), small_data(name, 364)[300:]
    cfg = TrainConfig(
        steps=40,
        batch_size=64,
        val_every=10,
        checkpoint_every=20,
        seed=3,
        schedule="cosine",
        patience=100,
    )
    full = small_model(name)
    r_full = fit(full, x, v, cfg, out=tmp_path / "full", device=device)

    part = small_model(name)

    part.crash = CrashAt(20)  # the process dies right after the step-20 checkpoint
    with pytest.raises(KeyboardInterrupt):
        fit(part, x, v, cfg, out=tmp_path / "part", device=device)
    assert latest_checkpoint(tmp_path / "part").name.endswith("000000020.safetensors")
    torch.manual_seed(12345)  # whatever happens between the two processes
    resumed = small_model(name)  # a fresh process builds the model anew
    r_res = fit(resumed, x, v, cfg, out=tmp_path / "part", resume=True, device=device)
    assert r_res.step == r_full.step == 40
    assert r_res.history == r_full.history
    for k, t in _params(full).items():
        assert torch.equal(t, resumed.state_dict()[k]), k


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, caplog):
    x = small_data("realnvp", 256)
    cfg = TrainConfig(steps=30, batch_size=64, val_every=0, checkpoint_every=10, keep_checkpoints=3)
    fit(small_model("realnvp"), x, None, cfg, out=tmp_path)
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name.endswith("000000030.safetensors")
    latest.write_bytes(latest.read_bytes()[:100])  # truncated by a crash
    ref = small_model("realnvp")
    fit(ref, x, None, cfg, out=tmp_path / "ref", steps=30)
    m = small_model("realnvp")
    r = fit(m, x, None, cfg, out=tmp_path, resume=True)  # resumes from step 20, the previous good one
    assert r.step == 30 and "skipping unreadable checkpoint" in caplog.text
    for k, t in ref.state_dict().items():
        assert torch.equal(t, m.state_dict()[k])
    for f in tmp_path.glob("ckpt-*.safetensors"):
        f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        fit(small_model("realnvp"), x, None, cfg, out=tmp_path, resume=True)


def test_early_stopping_restores_the_best_parameters():
    x, v = small_data("vae", 300), small_data("vae", 400)[300:]
    m = small_model("vae")
    r = fit(m, x[:64], v, steps=3000, batch_size=64, lr=1e-2, val_every=20, patience=3)
    assert r.stopped_early and r.step < 3000
    assert r.best_step == r.step - 3 * 20
    vals = [h["val"] for h in r.history if "val" in h]
    assert r.best_val == min(vals)
    from pyrogen.inference import objective_for
    from pyrogen.inference.trainer import _validate

    assert _validate(m, objective_for(m), v, seed=0, dev=torch.device("cpu")) == pytest.approx(r.best_val, rel=1e-6)


def test_loss_decreases_and_pyro_objective_trains_too():
    x = small_data("vae", 256)
    for objective in ("loss", "pyro"):
        m = small_model("vae")
        r = fit(m, x, None, steps=200, batch_size=64, lr=3e-3, log_every=20, objective=objective)
        losses = [h["loss"] for h in r.history]
        assert losses[-1] < losses[0] - 5, (objective, losses)


class _TwoPlayer(GenerativeModel):
    """A minimal two-group (critic / generator) model: the trainer needs no change for it."""

    family = "test"
    density = "none"

    def __init__(self):
        super().__init__((2,))
        self.gen = nn.Linear(2, 2)
        self.critic = nn.Linear(2, 1)
        self.calls: list[str] = []


class _TwoPlayerObjective(Objective):
    """Its objective: two critic updates per generator update, declared outside the model."""

    def groups(self, m):
        return {"critic": list(m.critic.parameters()), "generator": list(m.gen.parameters())}

    def schedule(self, m, step):
        return ("critic", "critic", "generator")

    def loss(self, m, batch, group="critic"):
        m.calls.append(group)
        fake = m.gen(torch.randn_like(batch))
        if group == "critic":  # WGAN critic loss with weight clipping left out
            return m.critic(fake.detach()).mean() - m.critic(batch).mean()
        return -m.critic(fake).mean()


def test_trainer_runs_a_multi_group_schedule():
    m = _TwoPlayer()
    g0, c0 = m.gen.weight.clone(), m.critic.weight.clone()
    fit(m, torch.randn(256, 2), None, steps=5, batch_size=32, val_every=0, loss=_TwoPlayerObjective())
    assert m.calls == ["critic", "critic", "generator"] * 5
    assert not torch.equal(g0, m.gen.weight) and not torch.equal(c0, m.critic.weight)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive integer; got 0"),
        ({"batch_size": -1}, "batch_size must be a positive integer; got -1"),
        ({"lr": float("nan")}, "lr must be a positive finite number; got nan"),
        ({"schedule": "linear"}, "schedule must be 'constant' or 'cosine'; got 'linear'"),
        ({"objective": "gan"}, "objective must be 'loss' or 'pyro'; got 'gan'"),
        ({"patience": 0}, "patience must be a positive integer or None; got 0"),
        ({"checkpoint_every": 5}, "out \\(a run directory\\) is required"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(small_model("realnvp"), small_data("realnvp", 64), **kwargs)


def test_bad_training_data_raise():
    m = small_model("vae")
    with pytest.raises(ValueError, match="train is empty"):
        fit(m, torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="train must hold only 0 and 1"):
        fit(m, torch.full((4, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"val must be finite; found nan"):
        fit(m, torch.zeros(4, 1, 8, 8), torch.full((4, 1, 8, 8), float("nan")))
    with pytest.raises(TypeError, match="unexpected setting 'stpes'"):
        fit(m, torch.zeros(4, 1, 8, 8), stpes=3)


def test_cosine_schedule_and_warmup():
    cfg = TrainConfig(steps=100, lr=1.0, schedule="cosine", warmup_steps=10)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(10) == pytest.approx(1.0) and cfg.lr_at(55) == pytest.approx(0.5)
    assert cfg.lr_at(100) == pytest.approx(0.0)


def test_fused_adam_gives_the_for_loop_adam_update():
    """The fused kernel (the default) and the reference for-loop Adam train to the same parameters."""
    x = small_data("realnvp", 256)
    runs = {}
    for fused in (True, False):
        m = small_model("realnvp")
        fit(m, x, config=TrainConfig(steps=25, batch_size=64, val_every=0, seed=1, weight_decay=1e-3, fused=fused))
        runs[fused] = _params(m)
    for k, t in runs[True].items():
        torch.testing.assert_close(t, runs[False][k], rtol=1e-5, atol=1e-6, msg=k)


def test_fused_adam_falls_back_where_the_kernel_is_missing(monkeypatch):
    from pyrogen.inference.trainer import _adam

    p = [nn.Parameter(torch.zeros(3))]
    settings = {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0}
    assert _adam(p, settings, True).defaults["fused"] is True
    assert not _adam(p, settings, False).defaults["fused"]
    adam = torch.optim.Adam

    def no_kernel(params, fused=None, **kw):  # what a device without the kernel (or an old torch) does
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return adam(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", no_kernel)
    assert not _adam(p, settings, True).defaults["fused"]


def test_an_exploding_loss_is_reported(caplog):
    """The loss leaves its own scale (item 14 of the hardening issue): fit says so and returns normally."""
    m = small_model("realnvp")
    x = small_data("realnvp", 256)
    exploding = Spy(objective_for(m), lambda spy, batch, group, loss: loss * 1e6 if spy.step >= 40 else loss)
    r = fit(m, x, None, steps=60, batch_size=64, log_every=20, loss=exploding)
    assert len(r.warnings) == 1 and "exploded at step 60" in r.warnings[0]
    assert "exploded" in caplog.text
    m2 = small_model("realnvp")
    assert fit(m2, x, None, steps=60, batch_size=64, log_every=20).warnings == []


class _OverflowingGradient(torch.autograd.Function):
    """The identity, whose backward pass overflows (a finite loss with an infinite gradient)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_an_update_whose_gradient_overflows_is_skipped_not_written_as_nan(caplog):
    """A batch far in the tails overflows the gradient: clipping an infinite norm would put NaN into every
    parameter (the ring-plus-Student-t run of the hardening issue ended that way). With ``grad_clip`` set the
    update is skipped and reported once; ``MAX_SKIPPED`` in a row stop the run naming the fix."""
    from pyrogen.inference.trainer import MAX_SKIPPED, TrainingDiverged

    x = small_data("realnvp", 256)

    def overflow_at(m, steps):
        seen = {}

        def change(spy, batch, group, loss):
            if spy.step in steps:
                seen[spy.step] = _params(m)
                return _OverflowingGradient.apply(loss)
            return loss

        return seen, Spy(objective_for(m), change)

    m = small_model("realnvp")
    seen, spy = overflow_at(m, {10, 11})
    r = fit(m, x, None, steps=30, batch_size=64, grad_clip=10.0, loss=spy)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert len(r.warnings) == 1 and r.warnings[0].startswith("skipped: the gradient was not finite at step 11"), (
        r.warnings
    )
    assert "not finite" in caplog.text
    for k, v in seen[10].items():  # the skipped update left the parameters as they were
        assert torch.equal(v, seen[11][k]), k

    m2 = small_model("realnvp")
    _, spy2 = overflow_at(m2, set(range(5, 100)))
    with pytest.raises(
        TrainingDiverged, match=f"not finite for {MAX_SKIPPED} steps in a row by step {5 + MAX_SKIPPED}"
    ):
        fit(m2, x, None, steps=60, batch_size=64, grad_clip=10.0, loss=spy2)


def test_no_readable_checkpoint_says_what_to_do(tmp_path):
    x = small_data("realnvp", 256)
    fit(small_model("realnvp"), x, None, steps=10, batch_size=64, checkpoint_every=5, out=tmp_path)
    for f in tmp_path.glob("ckpt-*.safetensors"):
        f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="delete the checkpoints .* or train into another --out"):
        fit(small_model("realnvp"), x, None, steps=10, batch_size=64, out=tmp_path, resume=True)


def _poison(path, key_prefix):
    from safetensors.torch import load, save

    from pyrogen import io

    blob = path.read_bytes()
    header = io._read_header(blob)
    tensors = {k: v.clone() for k, v in load(blob).items()}
    key = next(k for k in tensors if k.startswith(key_prefix) and tensors[k].is_floating_point())
    tensors[key].view(-1)[0] = float("nan")
    header["sha256"] = io._digest(tensors, header["json"])
    path.write_bytes(save(tensors, metadata=header))
    return key


@pytest.mark.parametrize("prefix", ["model.", "optim."])
def test_a_checkpoint_holding_nan_is_refused_and_the_previous_one_resumed(tmp_path, caplog, prefix):
    # before: a NaN parameter resumed and failed at the next checkpoint with the wrong advice; a NaN optimizer
    # moment named the poisoned file as the last good one
    x = small_data("realnvp", 256)
    cfg = TrainConfig(steps=30, batch_size=64, val_every=0, checkpoint_every=10, keep_checkpoints=3)
    fit(small_model("realnvp"), x, None, cfg, out=tmp_path)
    _poison(latest_checkpoint(tmp_path), prefix)
    ref = small_model("realnvp")
    fit(ref, x, None, cfg, out=tmp_path / "ref")
    m = small_model("realnvp")
    r = fit(m, x, None, cfg, out=tmp_path, resume=True)  # from step 20, the last good one
    assert r.step == 30 and "holds NaN or +inf values" in caplog.text
    for k, t in ref.state_dict().items():
        assert torch.equal(t, m.state_dict()[k])


def test_when_no_checkpoint_is_readable_only_the_error_is_said(tmp_path, caplog):
    x = small_data("realnvp", 256)
    fit(small_model("realnvp"), x, None, steps=10, batch_size=64, checkpoint_every=5, out=tmp_path)
    for f in tmp_path.glob("ckpt-*.safetensors"):
        f.write_bytes(b"garbage")
    caplog.clear()
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        fit(small_model("realnvp"), x, None, steps=10, batch_size=64, out=tmp_path, resume=True)
    assert "skipping unreadable checkpoint" not in caplog.text


def test_a_foreign_checkpoint_name_neither_survives_rotation_nor_costs_a_good_one(tmp_path):
    # before: ckpt-999999999.safetensors sorted newest, rotation kept it and deleted the good ckpt-30
    x = small_data("realnvp", 256)
    cfg = TrainConfig(steps=30, batch_size=64, val_every=0, checkpoint_every=10, keep_checkpoints=2)
    tmp_path.mkdir(exist_ok=True)
    foreign = tmp_path / "ckpt-999999999.safetensors"
    foreign.write_bytes(b"not ours")
    (tmp_path / "ckpt-notes.safetensors").write_bytes(b"not ours either")
    fit(small_model("realnvp"), x, None, cfg, out=tmp_path)
    names = sorted(p.name for p in tmp_path.glob("ckpt-*.safetensors"))
    assert names == [
        "ckpt-000000020.safetensors",
        "ckpt-000000030.safetensors",
        "ckpt-999999999.safetensors",
        "ckpt-notes.safetensors",
    ]
    assert foreign.read_bytes() == b"not ours"


@pytest.mark.parametrize("name", __import__("pyrogen.models", fromlist=["registry"]).registry.names())
def test_objective_pyro_trains_or_is_refused_in_one_line(name):
    # before: fit(ncsn, ..., objective="pyro") raised a raw NotImplementedError with a Pyro trace dump
    from conftest import small_data, small_model

    m, x = small_model(name), small_data(name, 32)
    try:
        result = fit(m, x, None, steps=1, batch_size=16, objective="pyro")
    except ValueError as e:
        assert "objective='pyro'" in str(e) and "\n" not in str(e), str(e)
    else:
        assert result.step == 1
