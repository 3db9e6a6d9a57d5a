"""Sequence models: TD-VAE's jumpy rollouts on the moving digits, the VRNN against an LSTM on the spoken digits.

Section ``td-vae``: TD-VAE trained by ``fit`` with its registered settings (early stopping on the validation
part's bound), then on every test sequence: the first ``OBSERVED`` frames observed, ``JUMPS`` jumps of one frame
rolled out (:meth:`pyrogen.models.TDVAE.rollout`), and in each predicted frame the digit's position -- the centre
of mass of the predicted pixel probabilities -- against the centre of mass of the true frame. A jump is *on track*
when the two are within one pixel along both axes. Reported: the share of test sequences on track for the first
3 jumps, the share on track at each jump, the mean distance per jump (for rollouts of drawn states, and of the
states' means: ``mean_rollouts``), and the test bound averaged over every jump (nats per jump). A figure of
rollouts goes to ``docs/figures/tdvae_rollouts.png``.

Section ``vrnn``: the VRNN trained by ``fit`` with its registered settings on the spoken digits, its test bound
per frame (the ELBO and the IWAE bound with k = 100, nats per frame of 20 standardized log-mel bands), beside an
LSTM with a Gaussian output (:class:`FrameLSTM` below: autoregressive, no latents, the same state size, exact
NLL) trained with the same steps, batch, learning rate and early stopping; spectrograms of test utterances and
of both models' samples go to ``docs/figures/vrnn_spectrograms.png``.

    python benchmarks/sequence.py                 # about 45 minutes on 2 cores
    python benchmarks/sequence.py --quick         # a smoke run
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from _common import report, section_parser, train_and_score

from pyrogen.data import load
from pyrogen.inference.objectives import objective_for
from pyrogen.models.sequence import track_rollouts

OBSERVED = 4
JUMPS = 8
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "tdvae_rollouts.png"


def rollout_scores(model: Any, test: torch.Tensor, seed: int = 0, mean: bool = False) -> dict[str, Any]:
    """Roll out every test sequence from its first ``OBSERVED`` frames (drawn states, or with ``mean`` the
    states' means); the digit's position against the truth (:func:`pyrogen.models.sequence.track_rollouts`)."""
    torch.manual_seed(seed)
    model.eval()
    dist, pred = track_rollouts(model, test, OBSERVED, JUMPS, mean=mean)
    on_track = dist <= 1.0
    return {
        "observed_frames": OBSERVED,
        "jumps": JUMPS,
        "share_on_track_3_jumps": round(float(on_track[:, :3].all(1).double().mean()), 4),
        "share_on_track_per_jump": [round(float(v), 4) for v in on_track.double().mean(0)],
        "mean_distance_per_jump": [round(float(v), 3) for v in dist.mean(0)],
        "_pred": pred,
    }


def figure(test: torch.Tensor, pred: torch.Tensor, path: Path, rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = OBSERVED + JUMPS
    fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 0.8, 2 * rows * 0.85))
    for i in range(rows):
        for t in range(cols):
            top, bottom = axes[2 * i, t], axes[2 * i + 1, t]
            top.imshow(test[i, t, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            if t >= OBSERVED:
                bottom.imshow(pred[i, t - OBSERVED, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            for a in (top, bottom):
                a.set_xticks([])
                a.set_yticks([])
        axes[2 * i, 0].set_ylabel("true", fontsize=7)
        axes[2 * i + 1, 0].set_ylabel("TD-VAE", fontsize=7)
    axes[0, 0].set_title(f"{OBSERVED} frames observed, then {JUMPS} one-frame jumps", loc="left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def td_vae(steps: int | None, write_figure: bool = True) -> dict[str, Any]:
    data = load("moving-digits")
    model, row = train_and_score("td-vae", data, {}, steps, score=False)
    with torch.no_grad():
        torch.manual_seed(1)
        bound = -float(objective_for(model).validation(model, data.test))
    scores = rollout_scores(model, data.test)
    pred = scores.pop("_pred")
    means = rollout_scores(model, data.test, mean=True)
    means.pop("_pred")
    if write_figure:
        figure(data.test, pred, FIGURE)
    return {**row, "test_bound_nats_per_jump": round(bound, 3), **scores, "mean_rollouts": means}


class FrameLSTM(torch.nn.Module):
    """The baseline: an LSTM over the frames so far, a diagonal Gaussian for the next frame (the first frame's
    from a learned state); exact log-likelihood."""

    def __init__(self, frame_dim: int, state_dim: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(frame_dim, state_dim, batch_first=True)
        self.start = torch.nn.Parameter(torch.zeros(1, 1, state_dim))
        self.head = torch.nn.Sequential(
            torch.nn.Linear(state_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2 * frame_dim)
        )

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next-frame Gaussian at every position of ``x`` ``(n, T, D)``, from the frames before it."""
        h = self.start.expand(len(x), 1, -1)
        if x.shape[1] > 1:
            h = torch.cat([h, self.lstm(x[:, :-1])[0]], 1)
        loc, raw = self.head(h).chunk(2, -1)
        return loc, torch.nn.functional.softplus(raw) + 1e-3

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        loc, scale = self._params(x)
        return torch.distributions.Normal(loc, scale).log_prob(x).sum((1, 2))

    @torch.no_grad()
    def sample(self, n: int, frames: int) -> torch.Tensor:
        x = torch.zeros(n, 0, self.lstm.input_size)
        for _ in range(frames):
            loc, scale = self._params(torch.cat([x, torch.zeros(n, 1, x.shape[-1])], 1))
            x = torch.cat([x, torch.distributions.Normal(loc[:, -1:], scale[:, -1:]).sample()], 1)
        return x


def train_lstm(data: Any, settings: dict[str, Any], seed: int = 0) -> tuple[FrameLSTM, dict[str, Any]]:
    """The baseline trained by the VRNN's registered settings (Adam, the batch, the steps, gradient clipping,
    early stopping on the validation NLL with the best parameters kept)."""
    import copy
    import math
    import time

    torch.manual_seed(seed)
    model = FrameLSTM(data.event_shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    g = torch.Generator().manual_seed(seed)
    best, best_state, best_step, waited, t = math.inf, copy.deepcopy(model.state_dict()), 0, 0, time.perf_counter()
    step = 0
    for step in range(1, settings["steps"] + 1):
        batch = data.train[torch.randint(0, len(data.train), (settings["batch_size"],), generator=g)]
        loss = -model.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        opt.step()
        if step % settings["val_every"] == 0 or step == settings["steps"]:
            with torch.no_grad():
                v = float(-model.log_prob(data.val).mean())
            if v < best:
                best, best_state, best_step, waited = v, copy.deepcopy(model.state_dict()), step, 0
            else:
                waited += 1
                if waited >= settings["patience"]:
                    break
    model.load_state_dict(best_state)
    with torch.no_grad():
        nll = -model.log_prob(data.test)
    frames = data.event_shape[0]
    return model, {
        "model": "lstm-gaussian",
        "data": data.name,
        "nll_per_frame": round(float(nll.mean()) / frames, 4),
        "stderr_per_frame": round(float(nll.std() / math.sqrt(len(nll))) / frames, 4),
        "steps": step,
        "best_step": best_step,
        "train_s": round(time.perf_counter() - t, 1),
    }


def spectrograms(test: torch.Tensor, vrnn: torch.Tensor, lstm: torch.Tensor, path: Path, cols: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, cols, figsize=(cols * 1.5, 4.2))
    for row, (name, x) in enumerate((("test", test), ("VRNN", vrnn), ("LSTM", lstm))):
        for i in range(cols):
            ax = axes[row, i]
            ax.imshow(x[i].T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-2.5, vmax=2.5)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(name, fontsize=8)
    axes[0, 0].set_title("log-mel frames (time across, 20 bands up)", loc="left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def vrnn(steps: int | None, write_figure: bool = True, figure_path: Path | None = None) -> list[dict[str, Any]]:
    import math

    from pyrogen.models import registry

    data = load("spoken-digits")
    frames = data.event_shape[0]
    model, row = train_and_score("vrnn", data, {}, steps, score=False)
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = model.elbo(data.test)
        iwae = model.iwae(data.test, k=10 if steps else 100, chunk=10 if steps else 50)
    row |= {
        "elbo_per_frame": round(-float(elbo.mean()) / frames, 4),
        "iwae100_per_frame": round(-float(iwae.mean()) / frames, 4),
        "stderr_per_frame": round(float(iwae.std() / math.sqrt(len(iwae))) / frames, 4),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)  # each row as it comes
    settings = {**registry.get("vrnn").train_defaults_for(data), **({"steps": steps} if steps else {})}
    lstm, base = train_lstm(data, settings)
    print(json.dumps(base), file=sys.stderr, flush=True)
    if write_figure:
        torch.manual_seed(2)
        spectrograms(
            data.test[:: max(1, len(data.test) // 6)][:6],
            model.sample(6),
            lstm.sample(6, frames),
            figure_path or FIGURE.with_name("vrnn_spectrograms.png"),
        )
    return [row, base]


SECTIONS = ("td-vae", "vrnn")


def main(argv: list[str] | None = None) -> int:
    args = section_parser(__doc__, SECTIONS).parse_args(argv)
    steps = 30 if args.quick else None
    out: dict[str, Any] = {}
    for section in args.only or SECTIONS:
        if section == "td-vae":
            out["td_vae"] = td_vae(steps, write_figure=not args.quick)
        elif section == "vrnn":
            out["vrnn"] = vrnn(steps, write_figure=not args.quick)

    def printer(o: dict[str, Any]) -> None:
        r = o.get("td_vae")
        if r:
            print(
                f"TD-VAE on moving-digits: test bound {r['test_bound_nats_per_jump']} nats per jump; "
                f"{100 * r['share_on_track_3_jumps']:.1f}% of test sequences within one pixel for 3 jumps; "
                f"per jump {r['share_on_track_per_jump']}; mean distance {r['mean_distance_per_jump']} px "
                f"(best step {r['best_step']}, {r['train_s']} s)"
            )
        for r in o.get("vrnn", []):
            bound = r.get("iwae100_per_frame", r.get("nll_per_frame"))
            print(f"spoken digits, {r['model']:<14} test NLL (bound) per frame {bound} (best step {r['best_step']})")

    return report(out, args.json, printer)


if __name__ == "__main__":
    sys.exit(main())
