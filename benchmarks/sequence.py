"""Sequence models on the moving digits: TD-VAE's jumpy rollouts against the true motion.

Section ``td-vae``: TD-VAE trained by ``fit`` with its registered settings (early stopping on the validation
part's bound), then on every test sequence: the first ``OBSERVED`` frames observed, ``JUMPS`` jumps of one frame
rolled out (:meth:`pyrogen.models.TDVAE.rollout`), and in each predicted frame the digit's position -- the centre
of mass of the predicted pixel probabilities -- against the centre of mass of the true frame. A jump is *on track*
when the two are within one pixel along both axes. Reported: the share of test sequences on track for the first
3 jumps, the share on track at each jump, the mean distance per jump, and the test bound averaged over every jump
(nats per jump). A figure of rollouts goes to ``docs/figures/tdvae_rollouts.png``.

    python benchmarks/sequence.py                 # about 25 minutes on 2 cores
    python benchmarks/sequence.py --quick         # a smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from _common import report, section_parser, train_and_score

from pyrogen.data import load
from pyrogen.inference.objectives import objective_for

OBSERVED = 4
JUMPS = 8
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "tdvae_rollouts.png"


def centre_of_mass(frames: torch.Tensor) -> torch.Tensor:
    """``(..., 1, H, W)`` non-negative frames to the (row, column) of their centre of mass, ``(..., 2)``."""
    f = frames[..., 0, :, :].double()
    mass = f.sum((-2, -1)).clamp_min(1e-12)
    rows = torch.arange(f.shape[-2], dtype=f.dtype)
    cols = torch.arange(f.shape[-1], dtype=f.dtype)
    r = (f.sum(-1) * rows).sum(-1) / mass
    c = (f.sum(-2) * cols).sum(-1) / mass
    return torch.stack([r, c], -1)


def rollout_scores(model: Any, test: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Roll out every test sequence from its first ``OBSERVED`` frames; the digit's position against the truth."""
    torch.manual_seed(seed)
    model.eval()
    pred = model.rollout(test[:, :OBSERVED], steps=JUMPS)  # frames OBSERVED .. OBSERVED + JUMPS - 1
    truth = test[:, OBSERVED : OBSERVED + JUMPS]
    dist = (centre_of_mass(pred) - centre_of_mass(truth)).abs().amax(-1)  # (n, JUMPS), pixels
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
    if write_figure:
        figure(data.test, pred, FIGURE)
    return {**row, "test_bound_nats_per_jump": round(bound, 3), **scores}


SECTIONS = ("td-vae",)


def main(argv: list[str] | None = None) -> int:
    args = section_parser(__doc__, SECTIONS).parse_args(argv)
    steps = 30 if args.quick else None
    out: dict[str, Any] = {}
    for section in args.only or SECTIONS:
        if section == "td-vae":
            out["td_vae"] = td_vae(steps, write_figure=not args.quick)

    def printer(o: dict[str, Any]) -> None:
        r = o.get("td_vae")
        if r:
            print(
                f"TD-VAE on moving-digits: test bound {r['test_bound_nats_per_jump']} nats per jump; "
                f"{100 * r['share_on_track_3_jumps']:.1f}% of test sequences within one pixel for 3 jumps; "
                f"per jump {r['share_on_track_per_jump']}; mean distance {r['mean_distance_per_jump']} px "
                f"(best step {r['best_step']}, {r['train_s']} s)"
            )

    return report(out, args.json, printer)


if __name__ == "__main__":
    sys.exit(main())
