"""Per-step training time of pyrogen against hand-written PyTorch, side by side.

Each entry times, in one process and in interleaved rounds, (a) one step of
pyrogen's trainer (:func:`pyrogen.inference.trainer.training_step`, with the
trainer's batch indexing and loss bookkeeping), (b) a hand-written PyTorch loop
of the same model and loss with ``torch.optim.Adam``'s defaults, (c) pyrogen's
step with ``TrainConfig(fused=False)`` (the same for-loop Adam as the reference,
so its ratio is the trainer's own overhead), and (d) where the model is an ELBO model, Pyro's
default ``SVI(model, guide, Adam, Trace_ELBO())``, and (e) for MAF, zuko's MAF of
the same size when zuko is installed (``pip install zuko``). The two-group row
(``wgan-gp-2d-b256``) trains a 2-D WGAN-GP (five critic updates per generator
update, two Adam optimizers, an EMA of the generator; ``benchmarks/two_group.py``)
against the same networks and losses in a hand-written loop. It reports medians over
rounds and the ratio pyrogen / reference.

    python benchmarks/run.py            # a table
    python benchmarks/run.py --json     # [{name, pyrogen_ms, reference_ms, ratio, ...}]
    python benchmarks/run.py --quick    # fewer rounds (a smoke test)

A full run keeps its rows in ``results/run.json``, from which ``python benchmarks/pages.py`` writes the speed
table of the results page and the README's speed row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from pyro.distributions.transforms.utils import clamp_preserve_gradients
from torch import nn

from pyrogen.inference import TrainConfig
from pyrogen.inference.trainer import _Batches, make_optimizers, training_step
from pyrogen.models import MAF, VAE, RealNVP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_results  # noqa: E402
from two_group import TinyWGANGP, plain_loop  # noqa: E402

TARGETS = {
    "vae-784-400-20-b128": 1.10,
    "vae-digits-b128": 1.10,
    "realnvp-2d-b512": 1.0,
    "maf-64d-b128": 1.0,
    "wgan-gp-2d-b256": 1.10,
    "wgan-gp-dcgan-digits-b64": 1.10,
}


def _pyrogen_step(
    model: nn.Module, data: torch.Tensor, batch_size: int, lr: float, fused: bool = True
) -> Callable[[int], None]:
    cfg = TrainConfig(batch_size=batch_size, lr=lr, steps=10**9, fused=fused)
    groups = make_optimizers(model, cfg)
    batches = _Batches(len(data), batch_size, 0, 1, 0, data.device)
    running = torch.zeros(())
    model.train()

    def step(i: int) -> None:
        nonlocal running
        batch = data.index_select(0, batches(i))
        for loss in training_step(model, None, batch, i, groups, cfg).values():
            running += loss

    return step


def _torch_loop(
    module: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor,
    batch_size: int,
    lr: float,
) -> Callable[[int], None]:
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    perm = torch.randperm(len(data))
    per_epoch = len(data) // batch_size

    def step(i: int) -> None:
        j = i % per_epoch
        batch = data[perm[j * batch_size : (j + 1) * batch_size]]
        opt.zero_grad(set_to_none=True)
        loss_fn(batch).backward()
        opt.step()

    return step


class PlainVAE(nn.Module):
    """The same VAE written by hand: MLP encoder/decoder, softplus scale, closed-form KL."""

    def __init__(self, d: int, hidden: tuple[int, ...], latent: int):
        super().__init__()

        def mlp(sizes: list[int]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(a, b), nn.ReLU()]
            return nn.Sequential(*layers[:-1])

        self.enc = mlp([d, *hidden, 2 * latent])
        self.dec = mlp([latent, *hidden[::-1], d])

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        loc, raw = self.enc(x).chunk(2, -1)
        scale = F.softplus(raw) + 1e-4
        z = loc + torch.randn_like(loc) * scale
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)
        return (rec + kl).mean()


class PlainRealNVP(nn.Module):
    """The same RealNVP written by hand in eager PyTorch (same clamp, same reversal)."""

    def __init__(self, d: int, layers: int, hidden: tuple[int, ...]):
        super().__init__()
        self.split = d // 2
        nets = []
        for _ in range(layers):
            sizes = [self.split, *hidden]
            mods: list[nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:], strict=True):
                mods += [nn.Linear(a, b), nn.ReLU()]
            mods.append(nn.Linear(sizes[-1], 2 * (d - self.split)))
            nets.append(nn.Sequential(*mods))
        self.nets = nn.ModuleList(nets)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        log_det = x.new_zeros(len(x))
        y = x
        for net in reversed(self.nets):
            y = y.flip(-1)
            y1, y2 = y[:, : self.split], y[:, self.split :]
            mean, log_scale = net(y1).chunk(2, -1)
            log_scale = clamp_preserve_gradients(log_scale, -5.0, 3.0)
            y = torch.cat([y1, (y2 - mean) * torch.exp(-log_scale)], -1)
            log_det = log_det - log_scale.sum(-1)
        base = -0.5 * (y**2).sum(-1) - 0.5 * y.shape[-1] * torch.log(torch.tensor(2 * torch.pi))
        return -(base + log_det).mean()


class PlainMAF(nn.Module):
    """A MADE-MAF written by hand: masked linear layers (masks copied from ``like``), one pass per layer."""

    def __init__(self, like: MAF):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        masks = []
        self.direct = like.mades[0].net.direct is not None  # direct input-to-output connections
        for made in like.mades:
            net = made.net
            for layer in [*net.layers, *([net.direct] if self.direct else [])]:
                self.weights.append(nn.Parameter(torch.randn_like(layer.weight) * 0.05))
                self.biases.append(nn.Parameter(torch.zeros(layer.out_features)))
                masks.append(layer.masks[0])
        self.masks = masks
        self.per_layer = len(like.mades[0].net.layers) + self.direct

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        log_det = x.new_zeros(len(x))
        u = x
        k = self.per_layer
        for i in reversed(range(len(self.weights) // k)):  # data to base: the last layer first
            w, b, m = (
                self.weights[i * k : (i + 1) * k],
                self.biases[i * k : (i + 1) * k],
                self.masks[i * k : (i + 1) * k],
            )
            last = k - 1 - self.direct  # the output layer
            h = u
            for j in range(last):
                h = F.relu(F.linear(h, w[j] * m[j], b[j]))
            out = F.linear(h, w[last] * m[last], b[last])
            if self.direct:
                out = out + F.linear(u, w[k - 1] * m[k - 1])
            shift, log_scale = out.view(len(u), -1, 2).unbind(-1)
            log_scale = log_scale.clamp(-5.0, 3.0)
            u = u * log_scale.exp() + shift
            log_det = log_det + log_scale.sum(-1)
        base = -0.5 * (u**2).sum(-1) - 0.5 * u.shape[-1] * torch.log(torch.tensor(2 * torch.pi))
        return -(base + log_det).mean()


def _zuko_maf(dim: int, layers: int, hidden: tuple[int, ...]) -> tuple[nn.Module, Callable] | None:
    try:
        import zuko
    except ImportError:  # optional: pip install zuko (the "bench" extra)
        return None
    flow = zuko.flows.MAF(features=dim, transforms=layers, hidden_features=hidden)
    return flow, lambda x: -flow().log_prob(x).mean()


def _pyro_svi(model: VAE, data: torch.Tensor, batch_size: int, lr: float) -> Callable[[int], None]:
    pyro.clear_param_store()
    svi = pyro.infer.SVI(model.model, model.guide, pyro.optim.Adam({"lr": lr}), pyro.infer.Trace_ELBO())
    per_epoch = len(data) // batch_size

    def step(i: int) -> None:
        j = i % per_epoch
        svi.step(data[j * batch_size : (j + 1) * batch_size])

    return step


def _time(step: Callable[[int], None], start: int, n: int) -> float:
    t = time.perf_counter()
    for i in range(start, start + n):
        step(i)
    return (time.perf_counter() - t) / n * 1e3


def measure(name: str, contenders: dict[str, Callable[[int], None]], rounds: int, steps: int) -> dict[str, float | str]:
    for s in contenders.values():  # warm-up
        _time(s, 0, max(3, steps // 4))
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds):
        for k, s in contenders.items():
            times[k].append(_time(s, (r + 1) * steps, steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    row: dict[str, float | str] = {
        "name": name,
        "pyrogen_ms": round(med["pyrogen"], 4),
        "reference_ms": round(med["reference"], 4),
        "ratio": round(med["pyrogen"] / med["reference"], 3),
        "target": TARGETS[name],
    }
    if "pyrogen_unfused" in med:
        row["pyrogen_unfused_ms"] = round(med["pyrogen_unfused"], 4)
        row["unfused_ratio"] = round(med["pyrogen_unfused"] / med["reference"], 3)
    if "pyrogen_unclipped_unfused" in med:
        row["unclipped_unfused_ratio"] = round(med["pyrogen_unclipped_unfused"] / med["reference"], 3)
    if "zuko" in med:
        row["zuko_ms"] = round(med["zuko"], 4)
        row["zuko_ratio"] = round(med["zuko"] / med["reference"], 3)
    if "pyro_svi" in med:
        row["pyro_svi_ms"] = round(med["pyro_svi"], 4)
        row["pyro_svi_ratio"] = round(med["pyro_svi"] / med["reference"], 3)
    return row


def run(rounds: int, steps: int) -> list[dict[str, float | str]]:
    rows = []
    torch.manual_seed(0)
    mnist_like = torch.bernoulli(torch.full((4096, 1, 28, 28), 0.3))
    for name, data, hidden, latent in (
        ("vae-784-400-20-b128", mnist_like, (400,), 20),
        ("vae-digits-b128", torch.bernoulli(torch.full((1293, 1, 8, 8), 0.4)), (256, 256), 16),
    ):
        torch.manual_seed(0)
        model = VAE(event_shape=tuple(data.shape[1:]), latent_dim=latent, hidden=hidden, kl_warmup=0)
        unfused = VAE(event_shape=tuple(data.shape[1:]), latent_dim=latent, hidden=hidden, kl_warmup=0)
        plain = PlainVAE(data[0].numel(), hidden, latent)
        svi_model = VAE(event_shape=tuple(data.shape[1:]), latent_dim=latent, hidden=hidden, kl_warmup=0)
        rows.append(
            measure(
                name,
                {
                    "pyrogen": _pyrogen_step(model, data, 128, 1e-3),
                    "pyrogen_unfused": _pyrogen_step(unfused, data, 128, 1e-3, fused=False),
                    "reference": _torch_loop(plain, plain.loss, data, 128, 1e-3),
                    "pyro_svi": _pyro_svi(svi_model, data, 128, 1e-3),
                },
                rounds,
                steps,
            )
        )
    torch.manual_seed(0)
    moons = torch.randn(30000, 2)
    flow = RealNVP(event_shape=(2,), num_layers=8, hidden=(64, 64))
    flow_unfused = RealNVP(event_shape=(2,), num_layers=8, hidden=(64, 64))
    plain_flow = PlainRealNVP(2, 8, (64, 64))
    # the same flow without the conditioners' soft clip of their inputs (which the reference has not): what that
    # robustness costs a step
    unclipped = RealNVP(event_shape=(2,), num_layers=8, hidden=(64, 64), conditioner_clip=None)
    rows.append(
        measure(
            "realnvp-2d-b512",
            {
                "pyrogen": _pyrogen_step(flow, moons, 512, 1e-3),
                "pyrogen_unfused": _pyrogen_step(flow_unfused, moons, 512, 1e-3, fused=False),
                "pyrogen_unclipped_unfused": _pyrogen_step(unclipped, moons, 512, 1e-3, fused=False),
                "reference": _torch_loop(plain_flow, plain_flow.loss, moons, 512, 1e-3),
            },
            rounds,
            steps,
        )
    )
    torch.manual_seed(0)
    vectors = torch.randn(4096, 64)
    maf = MAF(event_shape=(64,), num_layers=5, hidden=(128,))
    maf_unfused = MAF(event_shape=(64,), num_layers=5, hidden=(128,))
    plain_maf = PlainMAF(maf)
    contenders = {
        "pyrogen": _pyrogen_step(maf, vectors, 128, 1e-3),
        "pyrogen_unfused": _pyrogen_step(maf_unfused, vectors, 128, 1e-3, fused=False),
        "reference": _torch_loop(plain_maf, plain_maf.loss, vectors, 128, 1e-3),
    }
    zuko = _zuko_maf(64, 5, (128,))
    if zuko is not None:
        contenders["zuko"] = _torch_loop(zuko[0], zuko[1], vectors, 128, 1e-3)
    rows.append(measure("maf-64d-b128", contenders, rounds, steps))
    torch.manual_seed(0)
    points = torch.randn(30000, 2)
    gan, gan_unfused, plain_gan = TinyWGANGP(), TinyWGANGP(), TinyWGANGP()
    contenders = {
        "pyrogen": _pyrogen_step(gan, points, 256, 1e-4),
        "pyrogen_unfused": _pyrogen_step(gan_unfused, points, 256, 1e-4, fused=False),
        "reference": plain_loop(plain_gan, points, 256),
    }
    rows.append(measure("wgan-gp-2d-b256", contenders, rounds, steps))
    rows.append(wgan_gp_digits_row(rounds, steps))
    return rows


def _plain_registered_gan(model: nn.Module, data: torch.Tensor, batch_size: int, lr: float) -> Callable[[int], None]:
    """A registered GAN's networks trained by hand: ``n_critic`` critic steps (WGAN loss, gradient penalty),
    a generator step, two Adam optimizers with the model's betas, an EMA of the generator."""
    from pyrogen.inference.adversarial import gradient_penalty

    g, d = model.generator, model.critic
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=model.betas)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=model.betas)
    shadow = [p.detach().clone() for p in g.parameters()]  # the EMA of the generator, as the model keeps one
    perm = torch.randperm(len(data))
    per_epoch = len(data) // batch_size
    g.train()
    d.train()

    def step(i: int) -> None:
        j = i % per_epoch
        x = data[perm[j * batch_size : (j + 1) * batch_size]]
        for _ in range(model.n_critic):
            fake = g(torch.randn(len(x), model.latent_dim)).detach()
            loss_d = d(fake).mean() - d(x).mean() + gradient_penalty(d, x, fake, model.gp_weight)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = -d(g(torch.randn(len(x), model.latent_dim))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            beta = min(0.999, (1 + i) / (10 + i))
            torch._foreach_lerp_(shadow, list(g.parameters()), 1.0 - beta)

    return step


def wgan_gp_digits_row(rounds: int, steps: int) -> dict[str, float | str]:
    """The registered ``wgan-gp`` (DCGAN networks) on the grey digits, batch 64, against the same by hand."""
    from pyrogen.data import load
    from pyrogen.models import registry

    data = load("digits")
    torch.manual_seed(0)
    make = lambda: registry.get("wgan-gp").from_dataset(data)  # noqa: E731
    gan, gan_unfused, plain = make(), make(), make()
    contenders = {
        "pyrogen": _pyrogen_step(gan, data.train, 64, 2e-4),
        "pyrogen_unfused": _pyrogen_step(gan_unfused, data.train, 64, 2e-4, fused=False),
        "reference": _plain_registered_gan(plain, data.train, 64, 2e-4),
    }
    return measure("wgan-gp-dcgan-digits-b64", contenders, rounds, steps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=40, help="steps per round and contender")
    p.add_argument("--quick", action="store_true", help="3 rounds of 5 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 3, 5
    rows = run(args.rounds, args.steps)
    if not args.quick:
        save_results({"steps": rows})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(
            f"{'benchmark':<22}{'pyrogen ms':>12}{'torch ms':>10}{'ratio':>8}{'target':>8}"
            f"{'unfused Adam':>14}{'Pyro SVI':>10}{'zuko':>8}"
        )
        for r in rows:
            svi = f"{r['pyro_svi_ratio']:.2f}x" if "pyro_svi_ratio" in r else "-"
            zk = f"{r['zuko_ratio']:.2f}x" if "zuko_ratio" in r else "-"
            print(
                f"{r['name']:<22}{r['pyrogen_ms']:>12.3f}{r['reference_ms']:>10.3f}{r['ratio']:>8.3f}"
                f"{r['target']:>8.2f}{r['unfused_ratio']:>13.3f}x{svi:>10}{zk:>8}"
            )
        for r in rows:
            if "unclipped_unfused_ratio" in r:
                print(
                    f"{r['name']}: unfused Adam without the conditioners' soft clip {r['unclipped_unfused_ratio']:.3f}x"
                )
        print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
