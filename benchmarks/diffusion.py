"""The diffusion family's numbers: DDPM (ancestral and DDIM), NCSN and the VP score SDE on the toys and the digits,
classifier-free guidance, inpainting, latent diffusion and sampling speed.

Sections (``--only``):

- ``toys``: on 8gaussians and moons, from the registered defaults: MMD², C2ST (and, on 8gaussians, modes covered
  and the high-quality rate) of 1000 samples of DDPM's ancestral chain, of DDIM at 10 / 50 / 100 steps (the same
  network), of NCSN (annealed Langevin) and of the VP score SDE (probability-flow ODE); the test NLL of DDPM's
  variational bound and of the VP SDE through the probability-flow ODE (exact trace), next to the best possible
  value (minus the entropy, ``pyrogen.data.TOY_ENTROPY``).
- ``digits``: on the dequantized digits: bits/dim of DDPM's bound (discretized decoder) and of the VP SDE's
  probability flow (Hutchinson trace, one probe), next to the flow family's best (Glow 2.12, docs/flows.md); FID, KID,
  precision and recall of DDPM (ancestral; DDIM at 10, 50, 100 steps), of NCSN and of the VP SDE (ODE).
- ``guidance``: a class-conditional DDPM (label dropped 10% of the time): for guidance scales 0, 1 and 3, the
  share of DDIM-50 samples that the feature network's classifier reads as the asked-for label, and their FID.
- ``inpainting``: DDPM completes the bottom half of the first 100 test digits given the top half, by replacement
  and by RePaint (5 rounds per step); the mean of 2 completions thresholded at 0.5 against the binarized digits
  (pixel accuracy), next to the VAE's 0.833 (docs/latent.md) and the EBM's 0.794.
- ``latent``: ``latent-diffusion`` over the codes of a VAE trained on the digits (both in one run): FID of its
  samples next to the VAE's own (prior samples decoded).
- ``text``: ``text-diffusion`` (text-to-image latent diffusion, captions from the digits' labels and measured
  thickness, size and slant) from its registered defaults: for guidance scales 0, 1 and 3, over the prompts
  "a thick / thin / large / small <digit>" and "a <digit> leaning left / right" for every digit (20 DDIM-50
  samples each), the share whose label the feature network's classifier reads as the prompt's digit and, per
  attribute, the share on the asked side of that digit's training median; and the FID of samples drawn for the
  360 test digits' own captions against the test digits.
- ``flow-matching``: ``flow-matching`` on the dequantized digits from its registered defaults: bits/dim through
  its ODE (Hutchinson trace, one probe), and the FID of its samples at 10 and 50 network evaluations (5 and 25
  midpoint steps) next to DDPM's DDIM at the same evaluations (10 and 50 steps; the DDPM of ``digits``): of one
  draw of 360 samples with its bootstrap interval, and the mean and standard deviation over five draws.
- ``speed``: samples per second of DDIM-50 and ancestral-1000 through ``DDPM.sample`` and through a hand-written
  PyTorch loop over the same network (the reference implementation of both update rules), side by side.

Trained models are kept in ``benchmarks/.cache/diffusion`` (``--fresh`` retrains).

    python benchmarks/diffusion.py --json            # everything (about 60 minutes on 2 cores)
    python benchmarks/diffusion.py --only toys
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import keep, report, section_parser  # noqa: E402
from gan import _pool, _round, train  # noqa: E402

from pyrogen import quality  # noqa: E402
from pyrogen.data import load  # noqa: E402
from pyrogen.io import load_checkpoint, save_checkpoint  # noqa: E402
from pyrogen.metrics import evaluate_nll  # noqa: E402
from pyrogen.models import registry  # noqa: E402

SECTIONS = ("toys", "digits", "guidance", "inpainting", "latent", "text", "flow-matching", "speed")
CACHE = Path(__file__).resolve().parent / ".cache" / "diffusion"
BEST_NLL = {"8gaussians": 2.838, "moons": 2.391}
FRESH = False
THREADS = 2
#: draws of samples whose FIDs the flow-matching section averages
FM_DRAWS = 5


def trained(name: str, data_name: str, options: dict[str, Any], steps: int | None) -> tuple[Any, dict]:
    """``train`` with the result kept on disk under a key of its arguments."""
    key = f"{name}-{data_name}-{'-'.join(f'{k}={v}' for k, v in sorted(options.items()))}-{steps}"
    path = CACHE / f"{key}.safetensors"
    if path.exists() and not FRESH:
        tensors, meta = load_checkpoint(path)
        model = registry.create(name, **meta["config"])
        model.load_state_dict(tensors)
        return model.eval(), meta["row"]
    model, row = train(name, data_name, options, steps)
    CACHE.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model.state_dict(), {"config": model.config(), "row": row})
    return model, row


def _quality(samples: torch.Tensor, data: Any) -> dict[str, Any]:
    real = data.test[:1000] if data.kind != "image" else data.test
    return _round(quality.compare(real, samples, data.kind, data.support, data.name))


def _toy_job(name: str, data_name: str, steps: int | None) -> list[dict]:
    torch.set_num_threads(1)
    data = load(data_name)
    model, row = trained(name, data_name, {}, steps)
    pyro.set_rng_seed(0)
    rows = []
    if name == "ddpm":
        nll = evaluate_nll(model, data.test)
        base = {"data": data_name, **row, "nll_nats": round(nll.nll_nats, 4), "nll_method": "variational bound"}
        t = time.perf_counter()
        rows.append({"variant": "ddpm ancestral (1000 steps)", **base, **_quality(model.sample(1000), data)})
        rows[-1]["sample_s"] = round(time.perf_counter() - t, 1)
        for k in (10, 50, 100):
            t = time.perf_counter()
            q = _quality(model.sample(1000, sampler="ddim", steps=k), data)
            rows.append(
                {"variant": f"ddim {k} steps", "data": data_name, **q, "sample_s": round(time.perf_counter() - t, 1)}
            )
    elif name == "score-sde":
        nll = evaluate_nll(model, data.test[:1000])
        t = time.perf_counter()
        q = _quality(model.sample(1000), data)
        rows.append(
            {
                "variant": "vp-sde probability flow",
                "data": data_name,
                **row,
                "nll_nats": round(nll.nll_nats, 4),
                "nll_stderr": round(nll.nll_stderr, 4),
                "nll_method": "probability-flow ODE, exact trace (1000 test points)",
                **q,
                "sample_s": round(time.perf_counter() - t, 1),
            }
        )
    else:
        t = time.perf_counter()
        q = _quality(model.sample(1000), data)
        rows.append(
            {
                "variant": f"{name} annealed Langevin",
                "data": data_name,
                **row,
                **q,
                "sample_s": round(time.perf_counter() - t, 1),
            }
        )
    for r in rows:
        if "nll_nats" in r:
            r["best_nll"] = BEST_NLL[data_name]
    return rows


def toys(steps: int | None, jobs: int) -> list[dict]:
    tasks = [(name, d, steps) for d in BEST_NLL for name in ("ddpm", "ncsn", "score-sde")]
    return [r for rows in _pool(jobs, tasks, _toy_job) for r in rows]


def _digits_job(name: str, steps: int | None) -> list[dict]:
    torch.set_num_threads(1)
    data = load("digits")
    model, row = trained(name, "digits", {}, steps)
    pyro.set_rng_seed(0)
    rows = []
    base = {"data": "digits", **row}
    if name in ("ddpm", "score-sde"):
        t = time.perf_counter()
        nll = evaluate_nll(model, data.test, levels=data.levels)
        base |= {
            "bits_per_dim": round(nll.bits_per_dim, 4),
            "bits_per_dim_stderr": round(nll.nll_stderr / (64 * math.log(2)), 4),
            "nll_method": "variational bound" if name == "ddpm" else "probability-flow ODE, Hutchinson (1 probe)",
            "nll_s": round(time.perf_counter() - t, 1),
        }
    t = time.perf_counter()
    label = {
        "ddpm": "ddpm ancestral (1000 steps)",
        "score-sde": "vp-sde probability flow",
        "ncsn": "ncsn annealed Langevin",
    }
    rows.append(
        {
            "variant": label[name],
            **base,
            **_quality(model.sample(len(data.test)), data),
            "sample_s": round(time.perf_counter() - t, 1),
        }
    )
    if name == "ddpm":
        for k in (10, 50, 100):
            t = time.perf_counter()
            q = _quality(model.sample(len(data.test), sampler="ddim", steps=k), data)
            rows.append(
                {"variant": f"ddim {k} steps", "data": "digits", **q, "sample_s": round(time.perf_counter() - t, 1)}
            )
    return rows


def digits(steps: int | None, jobs: int) -> list[dict]:
    return [r for rows in _pool(jobs, [(n, steps) for n in ("ddpm", "score-sde", "ncsn")], _digits_job) for r in rows]


def guidance(steps: int | None) -> list[dict]:
    torch.set_num_threads(THREADS)
    data = load("digits")
    model, row = trained("ddpm", "digits", {"classes": 10}, steps)
    rows = []
    for w in (0.0, 1.0, 3.0):
        pyro.set_rng_seed(0)
        samples, agree = [], []
        for y in range(10):
            s = model.sample(36, y=y, sampler="ddim", steps=50, guidance=w)
            _, probs = quality.image_features(s, "unit_interval")
            agree.append(float((probs.argmax(-1) == y).float().mean()))
            samples.append(s)
        q = _quality(torch.cat(samples), data)
        rows.append(
            {"guidance": w, "label_agreement": round(sum(agree) / 10, 4), "fid": q["fid"], "fid_ci": q["fid_ci"], **row}
        )
    return rows


def inpainting(steps: int | None, quick: bool) -> dict[str, Any]:
    torch.set_num_threads(THREADS)
    grey, binary = load("digits"), load("digits-binary")
    model, _ = trained("ddpm", "digits", {}, steps)
    n = 8 if quick else 100
    x, truth = grey.test[:n], binary.test[:n, :, 4:]
    known = torch.zeros(1, 8, 8, dtype=torch.bool)
    known[:, :4] = True
    out: dict[str, Any] = {"n": n}
    for method in ("replace", "repaint"):
        pyro.set_rng_seed(0)
        t = time.perf_counter()
        draws = torch.stack([model.inpaint(x, known, method=method, resample=5) for _ in range(2)])
        bottom = (draws.mean(0)[:, :, 4:] > 0.5).float()
        out[f"{method}_pixel_accuracy"] = round(float((bottom == truth).float().mean()), 4)
        out[f"{method}_s"] = round(time.perf_counter() - t, 1)
    return out


def latent(steps: int | None) -> dict[str, Any]:
    torch.set_num_threads(THREADS)
    data = load("digits")
    model, row = trained("latent-diffusion", "digits", {}, steps)
    pyro.set_rng_seed(0)
    q = _quality(model.sample(len(data.test)), data)
    pyro.set_rng_seed(0)
    q_vae = _quality(model.vae.sample(len(data.test)), data)
    return {"latent_diffusion": {**row, **q}, "its_vae_prior_samples": q_vae}


def text_prompts() -> list[str]:
    """The measured prompts: each attribute's two ends for every digit."""
    from pyrogen.data.captions import DIGIT_WORDS

    out = []
    for word in DIGIT_WORDS:
        out += [f"a thick {word}", f"a thin {word}", f"a large {word}", f"a small {word}"]
        out += [f"a {word} leaning left", f"a {word} leaning right"]
    return out


def text_agreement(model: Any, guidance_scale: float, per_prompt: int, steps: int = 50) -> dict[str, Any]:
    """Label agreement and each attribute's share on the asked side, over :func:`text_prompts`."""
    from pyrogen.data.captions import matches, parse

    labels, attrs = [], {"thickness": [], "size": [], "slant": []}
    for prompt in text_prompts():
        s = model.sample(per_prompt, prompt=prompt, sampler="ddim", steps=steps, guidance=guidance_scale)
        _, probs = quality.image_features(s, "unit_interval")
        labels.append(float((probs.argmax(-1) == parse(prompt)[0]).float().mean()))
        for a, share in matches(s, prompt).items():
            attrs[a].append(share)
    return {
        "label_agreement": round(sum(labels) / len(labels), 4),
        **{f"{a}_agreement": round(sum(v) / len(v), 4) for a, v in attrs.items()},
    }


def text(steps: int | None, quick: bool) -> list[dict[str, Any]]:
    from pyrogen.data.captions import captions

    torch.set_num_threads(THREADS)
    data = load("digits")
    model, row = trained("text-diffusion", "digits", {}, steps)
    test_captions = captions(data.test, data.labels["test"])
    rows = []
    for w in (0.0, 1.0, 3.0):
        pyro.set_rng_seed(0)
        agree = text_agreement(model, w, 2 if quick else 20)
        pyro.set_rng_seed(0)
        s = model.sample(len(data.test), prompt=test_captions, sampler="ddim", steps=50, guidance=w)
        q = _quality(s, data)
        rows.append({"guidance": w, **agree, "fid": q["fid"], "fid_ci": q["fid_ci"], **row})
    return rows


def flow_matching(steps: int | None) -> list[dict[str, Any]]:
    torch.set_num_threads(THREADS)
    data = load("digits")
    fm, row = trained("flow-matching", "digits", {}, steps)
    ddpm, _ = trained("ddpm", "digits", {}, steps)
    pyro.set_rng_seed(0)
    t = time.perf_counter()
    nll = evaluate_nll(fm, data.test, levels=data.levels)
    rows = [
        {
            "variant": "flow matching, ODE likelihood (Hutchinson, 1 probe)",
            "bits_per_dim": round(nll.bits_per_dim, 4),
            "bits_per_dim_stderr": round(nll.nll_stderr / (64 * math.log(2)), 4),
            "nll_s": round(time.perf_counter() - t, 1),
            **row,
        }
    ]
    real, _ = quality.image_features(data.test, data.support)
    for nfe in (10, 50):
        for name, draw in (
            ("flow matching, midpoint", lambda n, k=nfe: fm.sample(n, steps=k // 2)),
            ("ddpm, ddim", lambda n, k=nfe: ddpm.sample(n, sampler="ddim", steps=k)),
        ):
            pyro.set_rng_seed(0)
            t = time.perf_counter()
            q = _quality(draw(len(data.test)), data)
            row = {"variant": f"{name}, {nfe} evaluations", **q, "sample_s": round(time.perf_counter() - t, 1)}
            # FID of one draw moves with the draw by about as much as these models differ: the mean over
            # FM_DRAWS draws of as many samples (seeds 0, 1, ...) against the same test digits
            fids = [q["fid"]]
            for seed in range(1, FM_DRAWS):  # the FID alone: no bootstrap, no other metric
                pyro.set_rng_seed(seed)
                fake, _ = quality.image_features(draw(len(data.test)), data.support)
                fids.append(round(quality.frechet_distance_of_features(real, fake), 4))
            row |= {"fid_draws": fids, "fid_mean": round(statistics.mean(fids), 4)}
            row["fid_sd"] = round(statistics.stdev(fids), 4)
            rows.append(row)
    return rows


def speed(steps: int | None, quick: bool) -> list[dict[str, Any]]:
    """The same trained network through ``DDPM.sample`` and through a hand-written loop."""
    torch.set_num_threads(THREADS)
    model, _ = trained("ddpm", "digits", {}, steps)
    n = 16 if quick else 256
    sch = model.schedule
    ab, betas = sch.alpha_bars.float(), sch.betas.float()
    net = model.net
    shadows = dict(zip([k for k, _ in net.named_parameters()], model.ema._shadows(), strict=True))
    ref = type(net)(model.event_shape, model.features, model.emb_dim, model.classes)
    ref.load_state_dict({**net.state_dict(), **shadows})
    ref.eval()

    @torch.no_grad()
    def by_hand_ddim(k: int) -> torch.Tensor:
        x = torch.randn(n, *model.event_shape)
        seq = torch.linspace(1, sch.T, k).round().long().unique().flip(0).tolist()
        for i, t in enumerate(seq):
            prev = seq[i + 1] if i + 1 < len(seq) else 0
            eps = ref(x, torch.full((n,), t * 1000.0 / sch.T), None)
            x0 = ((x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
            x = ab[prev].sqrt() * x0 + (1 - ab[prev]).sqrt() * eps
        return (0.5 + 0.5 * x).clamp(0, 1)

    @torch.no_grad()
    def by_hand_ancestral() -> torch.Tensor:
        x = torch.randn(n, *model.event_shape)
        for t in range(sch.T, 0, -1):
            eps = ref(x, torch.full((n,), t * 1000.0 / sch.T), None)
            x0 = ((x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
            mean = (ab[t - 1].sqrt() * betas[t] * x0 + (1 - betas[t]).sqrt() * (1 - ab[t - 1]) * x) / (1 - ab[t])
            var = (1 - ab[t - 1]) / (1 - ab[t]) * betas[t]
            x = mean + var.sqrt() * torch.randn_like(x) if t > 1 else mean
        return (0.5 + 0.5 * x).clamp(0, 1)

    def once(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    rows = []
    for label, ours, hand in (
        ("ddim-50", lambda: model.sample(n, sampler="ddim", steps=50), lambda: by_hand_ddim(50)),
        ("ancestral-1000", lambda: model.sample(n), by_hand_ancestral),
    ):
        ours(), hand()  # warm-up
        a, b = math.inf, math.inf
        for _ in range(1 if quick else 3):  # interleaved rounds, the best of each: drift hits both alike
            a, b = min(a, once(ours)), min(b, once(hand))
        rows.append(
            {
                "sampler": label,
                "pyrogen_samples_per_s": round(n / a, 1),
                "by_hand_samples_per_s": round(n / b, 1),
                "ratio": round(a / b, 3),
            }
        )
    return rows


def _print(out: dict[str, Any]) -> None:
    for section in ("toys", "digits"):
        if section in out:
            print(f"\n{section}")
            for r in out[section]:
                keys = [
                    k
                    for k in (
                        "nll_nats",
                        "best_nll",
                        "bits_per_dim",
                        "mmd",
                        "c2st",
                        "modes",
                        "high_quality",
                        "fid",
                        "kid",
                        "precision",
                        "recall",
                        "sample_s",
                    )
                    if k in r
                ]
                print(f"  {r['variant']:<32} {r['data']:<11} " + "  ".join(f"{k} {r[k]}" for k in keys))
    for section in ("guidance", "text", "flow-matching", "speed"):
        for r in out.get(section, []):
            print(f"{section}: {r}")
    for section in ("inpainting", "latent"):
        if section in out:
            print(f"{section}: {out[section]}")


def main(argv: list[str] | None = None) -> int:
    global FRESH, THREADS
    p = section_parser(__doc__, SECTIONS)
    p.add_argument("--jobs", type=int, default=2, help="processes for the toys and digits sections")
    p.add_argument("--fresh", action="store_true", help="retrain instead of reading benchmarks/.cache/diffusion")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of the one-process sections")
    args = p.parse_args(argv)
    FRESH, THREADS = args.fresh, args.threads
    steps = 30 if args.quick else None
    only = set(args.only or SECTIONS)
    out: dict[str, Any] = {}
    if "toys" in only:
        keep(out, "toys", toys(steps, args.jobs))
    if "digits" in only:
        keep(out, "digits", digits(steps, args.jobs))
    if "guidance" in only:
        keep(out, "guidance", guidance(steps))
    if "inpainting" in only:
        keep(out, "inpainting", inpainting(steps, args.quick))
    if "latent" in only:
        keep(out, "latent", latent(steps))
    if "text" in only:
        keep(out, "text", text(steps, args.quick))
    if "flow-matching" in only:
        keep(out, "flow-matching", flow_matching(steps))
    if "speed" in only:
        keep(out, "speed", speed(steps, args.quick))
    return report(out, args.json, _print)


if __name__ == "__main__":
    raise SystemExit(main())
