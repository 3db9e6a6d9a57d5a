"""The autoencoders' numbers on the dequantized digits: reconstruction, representation and outlier scores, next to
PCA with the same code size and the VAE, and a t-SNE figure of the test digits' codes.

Each autoencoder recipe (``autoencoder``, ``denoising-ae``, ``sparse-ae``, ``contractive-ae``, ``stacked-ae``) is
trained from its registered defaults by :func:`pyrogen.inference.fit` (early stopping on the validation
reconstruction error, best parameters kept; seed 0), the VAE from its registered defaults on the same digits
(its codes are the posterior means). Reported on the 360 test digits:

- the reconstruction error (cross-entropy in nats per image) above its floor, the cross-entropy of each image
  with itself (grey values are no Bernoulli draws), and of test digits with 50% of their pixels zeroed;
- the linear-probe accuracy (logistic regression on standardized codes, trained on the training digits' codes
  and labels) and the 5-nearest-neighbour accuracy, against PCA with the same number of components;
- the outlier AUROC of the reconstruction error: test digits against the same digits turned upside down.

The figure ``representation_tsne.png`` shows scikit-learn's t-SNE (perplexity 30, seed 0) of the test digits'
codes of PCA, each autoencoder and the VAE, coloured by label, the probe accuracy in each panel's title.

    python benchmarks/representation.py --json           # about 10 minutes on 2 cores
    python benchmarks/representation.py --quick          # a smoke run with few steps
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import report, section_parser, train_and_score

from pyrogen.data import load
from pyrogen.metrics import auroc, knn_accuracy, linear_probe

SECTIONS = ("autoencoders",)
AUTOENCODERS = ("autoencoder", "denoising-ae", "sparse-ae", "contractive-ae", "stacked-ae")
OUT = Path("benchmark-output")


def _pca(train: torch.Tensor, test: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, random_state=0).fit(train.flatten(1).double().numpy())
    return (torch.from_numpy(pca.transform(x.flatten(1).double().numpy())) for x in (train, test))  # type: ignore[return-value]


def _row(name: str, codes_train: torch.Tensor, codes_test: torch.Tensor, data: Any) -> dict[str, Any]:
    ytr, yte = data.labels["train"], data.labels["test"]
    return {
        "model": name,
        "code_dim": codes_train.shape[1],
        "linear_probe": round(linear_probe(codes_train, ytr, codes_test, yte), 4),
        "knn_accuracy": round(knn_accuracy(codes_train, ytr, codes_test, yte, k=5), 4),
    }


def autoencoders(steps: int | None) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    data = load("digits")
    x = data.test
    floor = float(F.binary_cross_entropy(x.clamp(1e-6, 1 - 1e-6), x, reduction="none").flatten(1).sum(-1).mean())
    g = torch.Generator().manual_seed(1)
    zeroed = x * (torch.rand(x.shape, generator=g) >= 0.5)
    flipped = x.flip(-2)
    rows, codes = [], {}
    for name in AUTOENCODERS:
        model, trained = train_and_score(name, "digits", {}, steps, score=False)
        trained = {k: trained[k] for k in ("steps", "best_step", "train_s")}
        with torch.no_grad():
            ztr, zte = model.encode(data.train), model.encode(x)
            err = model.reconstruction_error(x)
            err_zeroed = model.error(x, model.decoder_output(model.encode(zeroed)))
            err_flipped = model.reconstruction_error(flipped)
        row = _row(name, ztr, zte, data)
        row.update(
            reconstruction_above_floor=round(float(err.mean()) - floor, 3),
            zeroed_half_above_floor=round(float(err_zeroed.mean()) - floor, 3),
            outlier_auroc_upside_down=round(auroc(err, err_flipped), 4),
            mean_code_activation=round(float(zte.mean()), 4),
            **trained,
        )
        rows.append(row)
        codes[name] = zte
    k = rows[0]["code_dim"]
    ptr, pte = _pca(data.train, x, k)
    rows.append(_row(f"pca ({k} components)", ptr, pte, data))
    codes["pca"] = pte
    vae, vae_row = train_and_score("vae", "digits", {}, steps)
    with torch.no_grad():
        vtr, vte = vae.encode(data.train)[0], vae.encode(x)[0]
    rows.append({**_row("vae (posterior means)", vtr, vte, data), "steps": vae_row["steps"]})
    codes["vae"] = vte
    return rows, codes


def tsne_figure(rows: list[dict[str, Any]], codes: dict[str, torch.Tensor], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    labels = load("digits").labels["test"].numpy()
    probe = {r["model"].split(" ")[0]: r["linear_probe"] for r in rows}
    names = ["pca", *AUTOENCODERS, "vae"]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.8))
    for ax, name in zip(axes, names, strict=True):
        emb = TSNE(perplexity=30, random_state=0, init="pca").fit_transform(codes[name].double().numpy())
        ax.scatter(emb[:, 0], emb[:, 1], c=labels, cmap="tab10", s=4)
        ax.set_title(f"{name}\nprobe {probe[name]:.3f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument("--figure", default=str(OUT / "representation_tsne.png"), help="where the t-SNE figure goes")
    args = p.parse_args(argv)
    rows, codes = autoencoders(30 if args.quick else None)
    tsne_figure(rows, codes, Path(args.figure))
    return report({"autoencoders": rows, "figure": args.figure}, args.json, lambda out: [print(r) for r in rows])


if __name__ == "__main__":
    sys.exit(main())
