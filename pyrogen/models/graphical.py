r"""Directed graphical models over discrete variables: naive Bayes (``naive-bayes``).

Naive Bayes (seed 001 §2.2) is the generative classifier :math:`p(y) \prod_i p(x_i \mid y)` over binary
features; its posterior

.. math:: p(y \mid x) = \frac{p(y) \prod_i p(x_i \mid y)}{\sum_{y'} p(y') \prod_i p(x_i \mid y')}

needs only the features that were observed: a missing :math:`x_i` is summed out, and
:math:`\sum_{x_i} p(x_i \mid y) = 1` drops its factor -- what a discriminative classifier
(logistic regression, its counterpart: the same log-linear form of :math:`p(y \mid x)`, fit directly)
cannot do without imputing. Its parameters have a closed form (counts with a Dirichlet / Beta prior,
:meth:`NaiveBayes.fit_counts`); it also trains by gradient on the joint likelihood like every model here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.data import Dataset
from pyrogen.models.base import GenerativeModel, check_positive_int
from pyrogen.models.registry import register

__all__ = ["NaiveBayes"]


@register("naive-bayes")
class NaiveBayes(GenerativeModel):
    r"""Bernoulli naive Bayes: :math:`y \sim \mathrm{Cat}(\pi)`, :math:`x_i \mid y \sim \mathrm{Bern}(\theta_{y i})`.

    Trains on ``(examples, labels)``; ``log_prob(x)`` is the marginal :math:`\log \sum_y p(y) p(x \mid y)`,
    :meth:`predict` and :meth:`class_log_probs` classify, with features missing where ``observed`` is False.

    Args:
        event_shape: the shape of one example (flattened to :math:`D` features).
        classes: :math:`C`.
        alpha: the pseudo-count of :meth:`fit_counts` (a Beta(alpha, alpha) prior on each :math:`\theta_{yi}`,
            Dirichlet(alpha) on :math:`\pi`; 1 is Laplace smoothing).
    """

    family: ClassVar[str] = "graphical"
    density: ClassVar[str] = "exact"
    support: ClassVar[str] = "binary"
    default_data: ClassVar[str] = "digits-binary"
    labelled: ClassVar[bool] = True

    def __init__(self, event_shape: Sequence[int] = (1, 8, 8), classes: int = 10, alpha: float = 1.0) -> None:
        super().__init__(event_shape)
        self.classes = check_positive_int("classes", classes)
        if self.classes < 2:
            raise ValueError(f"classes must be at least 2; got {classes!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0; got {alpha!r}")
        self.alpha = float(alpha)
        d = math.prod(self.event_shape)
        self.class_logits = nn.Parameter(torch.zeros(self.classes))
        self.feature_logits = nn.Parameter(torch.zeros(self.classes, d))

    def config(self) -> dict[str, Any]:
        return {"event_shape": tuple(self.event_shape), "classes": self.classes, "alpha": self.alpha}

    @classmethod
    def from_dataset(cls, data: Dataset, **kwargs: Any) -> GenerativeModel:
        """Naive Bayes for binary labelled ``data`` with as many classes as it has labels."""
        if "train" in data.labels:
            kwargs.setdefault("classes", int(data.labels["train"].max()) + 1)
        return super().from_dataset(data, **kwargs)

    @classmethod
    def train_defaults_for(cls, data: Dataset) -> dict[str, Any]:
        """1000 steps of batch 256 at lr 0.05 (the closed form, :meth:`fit_counts`, needs none)."""
        return {"lr": 0.05, "batch_size": 256, "steps": 1000, "val_every": 100, **cls.train_defaults}

    # -- the parameters ---------------------------------------------------------------------------------------------
    def _labels(self, y: object, n: int) -> torch.Tensor:
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((n,), y, dtype=torch.long)
        if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.is_floating_point():
            raise ValueError(f"y must be a label or an integer tensor of shape ({n},); got {y!r}")
        if ((y < 0) | (y >= self.classes)).any():
            raise ValueError(f"y must hold classes in 0..{self.classes - 1}; got {sorted(set(y.tolist()))}")
        return y.to(self.class_logits.device).long()

    def _split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(batch, tuple):
            raise ValueError("naive-bayes trains on (examples, labels)")
        x, y = batch
        return x.reshape(len(x), -1).to(self.feature_logits.dtype), self._labels(y, len(x))

    @torch.no_grad()
    def fit_counts(self, x: torch.Tensor, y: torch.Tensor) -> NaiveBayes:
        r"""The posterior-mean parameters given the data: :math:`\theta_{yi} = (n_{yi} + \alpha) / (n_y + 2\alpha)`,
        :math:`\pi_y = (n_y + \alpha) / (n + C\alpha)` (maximum likelihood at ``alpha=0``). Returns the model."""
        x = self.validate(x).reshape(len(x), -1).to(self.feature_logits.dtype)
        y = self._labels(y, len(x))
        onehot = F.one_hot(y, self.classes).to(x.dtype)
        n_y = onehot.sum(0)
        n_yi = onehot.T @ x
        a = self.alpha
        theta = ((n_yi + a) / (n_y[:, None] + 2 * a)).clamp(1e-6, 1 - 1e-6)
        pi = ((n_y + a) / (len(x) + self.classes * a)).clamp_min(1e-12)
        self.feature_logits.copy_(torch.log(theta) - torch.log1p(-theta))
        self.class_logits.copy_(pi.log())
        return self

    # -- densities and classification -------------------------------------------------------------------------------
    def joint_log_probs(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\log p(y) + \sum_{i\ \mathrm{observed}} \log p(x_i \mid y)` for every class, ``(n, C)``; the
        features where ``observed`` (a boolean mask broadcastable to ``x``) is False are summed out."""
        x = self.validate(x).reshape(len(x), -1).to(self.feature_logits.dtype)
        per_feature = -F.binary_cross_entropy_with_logits(
            self.feature_logits[None].expand(len(x), -1, -1), x[:, None].expand(-1, self.classes, -1), reduction="none"
        )  # (n, C, D)
        if observed is not None:
            if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool:
                raise ValueError("observed must be a boolean tensor, True where a feature is seen")
            try:
                mask = torch.broadcast_to(observed.to(x.device), (len(x), *self.event_shape)).reshape(len(x), -1)
            except RuntimeError:
                raise ValueError(
                    f"observed must broadcast to x's shape {(len(x), *self.event_shape)}; got {tuple(observed.shape)}"
                ) from None
            per_feature = per_feature * mask[:, None, :]
        return torch.log_softmax(self.class_logits, -1) + per_feature.sum(-1)

    def class_log_probs(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`\\log p(y \\mid x_{\\mathrm{observed}})`, ``(n, C)``."""
        return torch.log_softmax(self.joint_log_probs(x, observed), -1)

    def predict(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        """The most probable class of each example (missing features summed out)."""
        with torch.no_grad():
            return self.joint_log_probs(x, observed).argmax(-1)

    def log_prob(self, x: Any) -> torch.Tensor:
        r""":math:`\log p(x) = \log \sum_y p(y) p(x \mid y)`, the labels summed out (of a batch ``(x, y)`` the
        examples are scored: the density of ``x`` is what compares with the other families)."""
        if isinstance(x, tuple):
            x = x[0]
        return torch.logsumexp(self.joint_log_probs(x), -1)

    def joint_log_prob(self, x: torch.Tensor, y: object) -> torch.Tensor:
        r""":math:`\log p(x, y)` per example."""
        return self.joint_log_probs(x).gather(-1, self._labels(y, len(x))[:, None])[:, 0]

    def log_likelihood(self, x: Any, k: int | None = None) -> torch.Tensor:
        return self.log_prob(x)

    def loss(self, batch: Any) -> torch.Tensor:
        """:math:`-\\log p(x, y)` per example (the joint likelihood of the labelled data)."""
        x, y = self._split(batch)
        lp = torch.log_softmax(self.class_logits, -1)[y] - F.binary_cross_entropy_with_logits(
            self.feature_logits[y], x, reduction="none"
        ).sum(-1)
        return -lp.mean()

    def sample(self, n: int, y: object = None) -> torch.Tensor:
        """``n`` draws of :math:`x` (of class ``y`` if given, else :math:`y \\sim p(y)`)."""
        check_positive_int("n", n)
        with torch.no_grad():
            labels = dist.Categorical(logits=self.class_logits).sample((n,)) if y is None else self._labels(y, n)
            return torch.bernoulli(torch.sigmoid(self.feature_logits[labels])).reshape(n, *self.event_shape)

    # -- the Pyro program ---------------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> Any:
        """``y ~ Categorical(pi)``, ``x_i | y ~ Bernoulli(theta_{y i})`` -- ``y`` observed where given, else
        enumerated (a Pyro program for ``TraceEnum_ELBO`` or ``infer_discrete``)."""
        pyro.module(self.name or "naive-bayes", self)
        n = 1 if x is None else len(x)
        with pyro.plate("data", n):
            label = pyro.sample("y", dist.Categorical(logits=self.class_logits), obs=y, infer={"enumerate": "parallel"})
            flat = None if x is None else x.reshape(n, -1)
            return pyro.sample("x", dist.Bernoulli(logits=self.feature_logits[label]).to_event(1), obs=flat)

    def pyro_loss(self, batch: Any) -> torch.Tensor:
        """Pyro's ``Trace_ELBO`` on :meth:`model` with both sites observed: :math:`-\\log p(x, y)` per example."""
        x, y = self._split(self._checked_batch(batch))
        from pyro.infer import Trace_ELBO

        return Trace_ELBO().differentiable_loss(self.model, self.guide, x, y) / len(x)
