"""The trainer with several parameter groups: per-group optimizers, no cross-gradients, hooks, exact resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CrashAt, Spy, small_data, small_model

from pyrogen.inference import TrainConfig, TrainingDiverged, fit, latest_checkpoint, objective_for
from pyrogen.inference.trainer import make_optimizers, training_step
from pyrogen.io import CheckpointError, load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from two_group import TinyWGANGP, TinyWGANGPObjective  # noqa: E402

DATA = torch.randn(512, 2) * torch.tensor([1.0, 0.3]) + torch.tensor([2.0, -1.0])


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_a_generator_update_leaves_the_critic_without_gradient():
    torch.manual_seed(0)
    m = TinyWGANGP(n_critic=1)
    groups = make_optimizers(m, TrainConfig(lr=1e-3), Spy(objective_for(m), only="generator"))
    critic_before = _state(m.critic)
    losses = training_step(m, None, DATA[:64], 0, groups, TrainConfig(lr=1e-3))
    assert set(losses) == {"generator"}
    assert all(p.grad is None for p in m.critic.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.generator.parameters())
    assert all(p.requires_grad for p in m.parameters())  # switched back on
    for k, v in m.critic.state_dict().items():
        assert torch.equal(v, critic_before[k]), k
    groups = make_optimizers(m, TrainConfig(lr=1e-3), Spy(objective_for(m), only="critic"))
    for p in m.generator.parameters():
        p.grad = None
    training_step(m, None, DATA[:64], 1, groups, TrainConfig(lr=1e-3))
    assert all(p.grad is None for p in m.generator.parameters())


def test_group_settings_come_from_the_model_and_the_config(tmp_path):
    m = TinyWGANGP(n_critic=2)
    cfg = TrainConfig(steps=4, batch_size=64, checkpoint_every=2, groups={"generator": {"lr": 3e-4}})
    fit(m, DATA, None, cfg, out=tmp_path)
    groups = make_optimizers(m, cfg)
    assert groups.opts["critic"].param_groups[0]["betas"] == (0.0, 0.9)
    assert groups.opts["critic"].param_groups[0]["lr"] == 1e-4
    assert groups.opts["generator"].param_groups[0]["lr"] == 3e-4
    _, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert meta["groups"]["critic"] == {"lr": 1e-4, "betas": [0.0, 0.9], "weight_decay": 0.0, "grad_clip": None}
    assert meta["groups"]["generator"]["lr"] == 3e-4
    with pytest.raises(CheckpointError, match="group settings"):  # resuming with other settings is refused
        fit(TinyWGANGP(n_critic=2), DATA, None, cfg, out=tmp_path, resume=True, groups={})


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ({"discriminator": {"lr": 1.0}}, "names parameter group 'discriminator'"),
        ({"critic": {"momentum": 0.9}}, "unknown settings \\['momentum'\\]"),
        ({"critic": {"lr": -1.0}}, "lr of group 'critic' must be a positive finite number; got -1.0"),
        ({"critic": {"betas": (0.9,)}}, "betas of group 'critic' must be two numbers"),
    ],
)
def test_bad_group_settings_raise(groups, match):
    with pytest.raises(ValueError, match=match):
        fit(TinyWGANGP(), DATA, None, steps=1, groups=groups)


def test_history_shows_every_groups_loss_and_no_validation_without_a_monitor():
    m = TinyWGANGP(n_critic=3)
    r = fit(m, DATA, DATA[:64], steps=20, batch_size=64, log_every=10, val_every=5, patience=1)
    assert [h["step"] for h in r.history] == [10, 20]  # monitor None: no validation records, no early stop
    assert all({"loss", "loss.critic", "loss.generator"} <= set(h) for h in r.history)
    assert r.best_val is None and not r.stopped_early


def test_ema_tracks_the_generator_and_is_used_for_sampling(device):
    torch.manual_seed(0)
    m = TinyWGANGP(n_critic=1, ema=0.9)
    fit(m, DATA, None, steps=30, batch_size=64, lr=1e-3, device=device)
    m.cpu()
    shadows = m.ema._shadows()
    params = list(m.generator.parameters())
    assert int(m.ema.num_updates) == 30
    assert not torch.equal(shadows[0], params[0])
    torch.manual_seed(1)
    s = m.sample(5)
    torch.manual_seed(1)
    with torch.no_grad():  # the same draw by hand with the averaged weights
        z = torch.randn(5, m.latent)
        idx = 0
        h = z
        for layer in m.generator:
            if isinstance(layer, torch.nn.Linear):
                h = torch.nn.functional.linear(h, shadows[idx], shadows[idx + 1])
                idx += 2
            else:
                h = layer(h)
    torch.testing.assert_close(s, h)
    assert torch.equal(list(m.generator.parameters())[0], params[0])  # the training weights are back


def _two_group_cfg():
    return TrainConfig(steps=24, batch_size=64, checkpoint_every=8, val_every=0, seed=2, schedule="cosine")


def test_two_groups_with_ema_and_replay_buffer_resume_bit_for_bit(tmp_path, device):
    cfg = _two_group_cfg()
    torch.manual_seed(0)
    full = TinyWGANGP(n_critic=2, ema=0.95, replay=100)
    r_full = fit(full, DATA, None, cfg, out=tmp_path / "full", device=device)
    assert int(full.replay.size) == 100  # the buffer filled and wrapped around
    torch.manual_seed(0)
    part = TinyWGANGP(n_critic=2, ema=0.95, replay=100)

    part.crash = CrashAt(16)
    with pytest.raises(KeyboardInterrupt):
        fit(part, DATA, None, cfg, out=tmp_path / "part", device=device)
    torch.manual_seed(999)
    resumed = TinyWGANGP(n_critic=2, ema=0.95, replay=100)
    r_res = fit(resumed, DATA, None, cfg, out=tmp_path / "part", resume=True, device=device)
    assert r_res.history == r_full.history
    for k, v in _state(full).items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert any(k.startswith("ema.shadow_") for k in full.state_dict())
    assert "replay.states" in full.state_dict()


@pytest.mark.slow
@pytest.mark.xdist_group("ddp")
def test_two_groups_resume_bit_for_bit_under_torchrun(tmp_path):
    script = Path(__file__).with_name("ddp_two_group.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for mode in ("full", "crash", "resume"):
        r = subprocess.run([*torchrun, str(tmp_path), mode], capture_output=True, text=True, timeout=600, env=env)
        # the ranks die at step 16 in "crash" (whichever exit torchrun reports); the step-16 checkpoint stays.
        # Otherwise the run must finish; gloo sometimes aborts in its teardown after the last checkpoint
        # ("terminate called without an active exception"), which the final checkpoint shows to be harmless.
        done = latest_checkpoint(tmp_path / ("full" if mode == "full" else "crash"))
        want = "000000016.safetensors" if mode == "crash" else "000000024.safetensors"
        assert done is not None and done.name.endswith(want), r.stderr[-3000:]
        assert r.returncode == 0 or mode == "crash" or "terminate called" in r.stderr, r.stderr[-3000:]
    full, _ = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    resumed, _ = load_checkpoint(latest_checkpoint(tmp_path / "crash"))
    assert full.keys() == resumed.keys()
    for k, v in full.items():
        if k.startswith(("model.", "optim.")):
            assert torch.equal(v, resumed[k]), k


def test_validation_can_use_input_gradients():
    class ScoreMonitor(TinyWGANGPObjective):
        monitor = "critic-gradient"
        validation_needs_grad = True

        def validation(self, model, batch):
            x = batch.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model.critic(x).sum(), x)
            return g.norm(dim=1).mean()

    m = TinyWGANGP(n_critic=1, ema=None)
    r = fit(m, DATA, DATA[:100], steps=4, batch_size=64, val_every=2, loss=ScoreMonitor())
    assert [h["step"] for h in r.history if "val" in h] == [2, 4]


def test_a_diverging_run_stops_and_writes_no_bad_checkpoint(tmp_path):
    m = TinyWGANGP(n_critic=1, ema=None)

    nan_after = Spy(objective_for(m), lambda spy, batch, group, loss: loss * float("nan") if spy.step >= 5 else loss)
    with pytest.raises(TrainingDiverged, match="became nan by step 6.*last good checkpoint is .*000000004"):
        fit(m, DATA, None, steps=20, batch_size=64, checkpoint_every=2, out=tmp_path, loss=nan_after)
    assert latest_checkpoint(tmp_path).name.endswith("000000004.safetensors")


def test_every_critic_update_draws_its_own_real_batch():
    # WGAN (Arjovsky et al., 2017, Algorithm 1) samples a fresh minibatch for each of its n_critic iterations
    m = small_model("wgan-gp")
    m.n_critic = 5
    x = small_data("wgan-gp")
    seen: list[tuple[str, torch.Tensor]] = []

    def recording(spy, batch, group, loss):
        seen.append((group, batch.detach().clone()))
        return loss

    fit(m, x, steps=3, batch_size=32, lr=1e-4, seed=0, log_every=1, loss=Spy(objective_for(m), recording))
    assert [g for g, _ in seen] == (["critic"] * 5 + ["generator"]) * 3
    critic = [b for g, b in seen if g == "critic"]
    assert len(critic) == 15
    for i in range(len(critic)):
        for j in range(i):
            assert not torch.equal(critic[i], critic[j]), (i, j)
    # each batch is 32 training rows; the generator shares its step's first batch (the two players of a step
    # train on one batch, as the reference implementations do)
    rows = {tuple(r.flatten().tolist()) for r in x}
    assert all(tuple(r.flatten().tolist()) in rows for b in critic for r in b)
    for step in range(3):
        first, generator = seen[6 * step][1], seen[6 * step + 5][1]
        assert torch.equal(first, generator)
    # a one-critic schedule draws nothing extra: every update of a step sees the step's batch
    seen.clear()
    m2 = small_model("ns-gan")
    fit(m2, x, steps=2, batch_size=32, lr=1e-4, seed=0, loss=Spy(objective_for(m2), recording))
    assert torch.equal(seen[0][1], seen[1][1]) and torch.equal(seen[2][1], seen[3][1])
