r"""Directed graphical models over discrete variables: Bayesian networks (``bayes-net``) and naive Bayes
(``naive-bayes``).

Naive Bayes is the generative classifier :math:`p(y) \prod_i p(x_i \mid y)` over binary
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
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.checks import integer
from pyrogen.data import Dataset
from pyrogen.inference.objectives import JointLikelihood, MaximumLikelihood
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_positive_int, takes_context
from pyrogen.models.registry import Recipe, register, same_support

__all__ = ["BayesNet", "NaiveBayes"]


def _naive_bayes_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Naive Bayes for binary labelled ``data`` with as many classes as it has labels."""
    if "train" in data.labels:
        kwargs.setdefault("classes", int(data.labels["train"].max()) + 1)
    return same_support(recipe, data, kwargs)


def _naive_bayes_train(data: Dataset) -> dict[str, Any]:
    """1000 steps of batch 256 at lr 0.05 (the closed form, :meth:`fit_counts`, needs none)."""
    return {"lr": 0.05, "batch_size": 256, "steps": 1000, "val_every": 100}


@register(
    "naive-bayes",
    family="graphical",
    data="digits-binary",
    choices=_naive_bayes_choices,
    train=_naive_bayes_train,
    objective=lambda model: JointLikelihood(),
)
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

    support = "binary"
    labelled = True

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

    # -- the parameters ---------------------------------------------------------------------------------------------
    def _labels(self, y: object, n: int) -> torch.Tensor:
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((n,), y, dtype=torch.long)
        if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.is_floating_point():
            raise ValueError(f"y must be a label or an integer tensor of shape ({n},); got {y!r}")
        if ((y < 0) | (y >= self.classes)).any():
            raise ValueError(f"y must hold classes in 0..{self.classes - 1}; got {sorted(set(y.tolist()))}")
        return y.to(self.class_logits.device).long()

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

    @accepts_unbatched()
    def log_prob(self, x: Any) -> torch.Tensor:
        r""":math:`\log p(x) = \log \sum_y p(y) p(x \mid y)`, the labels summed out (of a batch ``(x, y)`` the
        examples are scored: the density of ``x`` is what compares with the other families)."""
        if isinstance(x, tuple):
            x = x[0]
        return torch.logsumexp(self.joint_log_probs(x), -1)

    @takes_context
    def joint_log_prob(self, x: torch.Tensor, y: object) -> torch.Tensor:
        r""":math:`\log p(x, y)` per example (what :class:`~pyrogen.inference.objectives.JointLikelihood` trains)."""
        x = self.validate(x).reshape(len(x), -1).to(self.feature_logits.dtype)
        y = self._labels(y, len(x))
        return torch.log_softmax(self.class_logits, -1)[y] - F.binary_cross_entropy_with_logits(
            self.feature_logits[y], x, reduction="none"
        ).sum(-1)

    def log_likelihood(self, x: Any, k: int | None = None) -> torch.Tensor:
        return self.log_prob(x)

    @takes_context
    def sample(self, n: int, y: object = None) -> torch.Tensor:
        """``n`` draws of :math:`x` (of class ``y`` if given, else :math:`y \\sim p(y)`)."""
        check_positive_int("n", n)
        with torch.no_grad():
            labels = dist.Categorical(logits=self.class_logits).sample((n,)) if y is None else self._labels(y, n)
            return torch.bernoulli(torch.sigmoid(self.feature_logits[labels])).reshape(n, *self.event_shape)

    # -- the Pyro program ---------------------------------------------------------------------------------------------
    @takes_context
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> Any:
        """``y ~ Categorical(pi)``, ``x_i | y ~ Bernoulli(theta_{y i})`` -- ``y`` observed where given, else
        enumerated (a Pyro program for ``TraceEnum_ELBO`` or ``infer_discrete``)."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        with data_plate(n):
            label = pyro.sample("y", dist.Categorical(logits=self.class_logits), obs=y, infer={"enumerate": "parallel"})
            flat = None if x is None else x.reshape(n, -1)
            return pyro.sample("x", dist.Bernoulli(logits=self.feature_logits[label]).to_event(1), obs=flat)


def _topological(nodes: Sequence[dict[str, Any]]) -> list[int]:
    """A topological order of ``nodes`` (indices), or a ValueError naming a node on a cycle."""
    names = [nd["name"] for nd in nodes]
    index = {n: i for i, n in enumerate(names)}
    state = [0] * len(nodes)  # 0 new, 1 on the stack, 2 done
    order: list[int] = []

    def visit(i: int) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            raise ValueError(f"the network has a cycle through node {names[i]!r}")
        state[i] = 1
        for p in nodes[i]["parents"]:
            visit(index[p])
        state[i] = 2
        order.append(i)

    for i in range(len(nodes)):
        visit(i)
    return order


def _check_nodes(nodes: object) -> list[dict[str, Any]]:
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise ValueError("nodes must be a non-empty list of {'name', 'states', 'parents', 'table'} dicts")
    out, seen = [], set()
    for nd in nodes:
        if not isinstance(nd, dict) or not isinstance(nd.get("name"), str) or not nd["name"]:
            raise ValueError(f"every node is a dict with a non-empty 'name'; got {nd!r}")
        name = nd["name"]
        if name in seen:
            raise ValueError(f"node {name!r} appears twice")
        seen.add(name)
        states = nd.get("states")
        if isinstance(states, bool) or not isinstance(states, int) or states < 2:
            raise ValueError(f"node {name!r}: states must be an integer >= 2; got {states!r}")
        parents = list(nd.get("parents", []))
        out.append({"name": name, "states": states, "parents": parents, "table": nd.get("table")})
    names = {nd["name"] for nd in out}
    for nd in out:
        for p in nd["parents"]:
            if p not in names:
                raise ValueError(f"node {nd['name']!r}: parent {p!r} is not a node")
            if p == nd["name"]:
                raise ValueError(f"the network has a cycle through node {p!r}")
    states = {nd["name"]: nd["states"] for nd in out}
    for nd in out:
        if nd["table"] is None:
            continue
        shape = tuple(states[p] for p in nd["parents"]) + (nd["states"],)
        try:
            t = torch.as_tensor(nd["table"], dtype=torch.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"node {nd['name']!r}: the table must be nested lists of numbers of shape {shape}"
            ) from None
        if tuple(t.shape) != shape:
            raise ValueError(
                f"node {nd['name']!r}: the table must have shape {shape} (parents, then states); got {tuple(t.shape)}"
            )
        if (t < 0).any() or not torch.allclose(t.sum(-1), torch.ones((), dtype=t.dtype), atol=1e-6):
            raise ValueError(f"node {nd['name']!r}: every row of the table must be non-negative and sum to 1")
    _topological(out)
    return out


def _bayes_net_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The student network's structure (uniform tables) for the ``student`` data, or ``nodes`` given.

    Raises:
        ValueError: data other than ``student`` without ``nodes`` (a user's file needs its own graph: the model
            never fits a structure the user did not give).
    """
    if data.support != "integer" or len(data.event_shape) != 1:
        raise ValueError(f"bayes-net models rows of integers; dataset {data.name!r} is {data.support}")
    if "nodes" not in kwargs and data.name != "student":
        raise ValueError(
            f"bayes-net needs the network's structure for {data.name!r}: give it with "
            '--set nodes=\'[{"name": "a", "states": 2, "parents": []}, ...]\' (one node per column, in order; '
            "from Python, nodes=[...]); only the bundled student data come with their graph"
        )
    if "nodes" not in kwargs:
        from pyrogen.data.networks import STUDENT

        kwargs["nodes"] = [{**nd, "table": None} for nd in STUDENT]
    return kwargs


def _bayes_net_train(data: Dataset) -> dict[str, Any]:
    """500 steps of batch 500 at lr 0.05 (:meth:`fit_counts` is the closed form for complete data)."""
    return {"lr": 0.05, "batch_size": 500, "steps": 500, "val_every": 100}


@register(
    "bayes-net",
    family="graphical",
    data="student",
    choices=_bayes_net_choices,
    train=_bayes_net_train,
    objective=lambda model: MaximumLikelihood(),  # of the observed values: EM's objective when some are missing
)
class BayesNet(GenerativeModel):
    r"""A discrete Bayesian network :math:`p(x) = \prod_v p(x_v \mid x_{\mathrm{pa}(v)})` from a DAG and its
    conditional probability tables.

    The data are integer rows ``(n, V)``, column :math:`v` the value of node :math:`v` (in the order of
    ``nodes``), ``-1`` where a value is missing (then summed out in :meth:`log_prob` and in training, which
    is EM's objective: the marginal likelihood of what was observed). Exact queries by enumeration:
    :meth:`query` (Pyro's ``TraceEnum_ELBO.compute_marginals``), :meth:`map_assignment` (``infer_discrete``
    at temperature 0); :meth:`fit_counts` learns the tables from complete data (counts plus a Dirichlet
    pseudo-count).

    Args:
        event_shape: ``(V,)``.
        nodes: a list of dicts ``{"name", "states", "parents", "table"}`` (the table may be ``None``:
            uniform); default the student network (:data:`pyrogen.data.networks.STUDENT`).
        alpha: the Dirichlet pseudo-count of :meth:`fit_counts`.

    Raises:
        ValueError: a cycle, an unknown parent, a table of the wrong shape or that does not sum to 1 --
            naming the node.
    """

    support = "integer"

    def __init__(
        self,
        event_shape: Sequence[int] | None = None,
        nodes: Sequence[dict[str, Any]] | None = None,
        alpha: float = 1.0,
    ) -> None:
        from pyrogen.data.networks import STUDENT

        self.nodes = _check_nodes(STUDENT if nodes is None else list(nodes))
        super().__init__((len(self.nodes),) if event_shape is None else event_shape)
        if tuple(self.event_shape) != (len(self.nodes),):
            raise ValueError(
                f"event_shape must be ({len(self.nodes)},), one column per node; got {tuple(self.event_shape)}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"alpha must be a number >= 0; got {alpha!r}")
        self.alpha = float(alpha)
        self.order = _topological(self.nodes)
        self.index = {nd["name"]: i for i, nd in enumerate(self.nodes)}
        states = {nd["name"]: nd["states"] for nd in self.nodes}
        self.logits = nn.ParameterList()
        for nd in self.nodes:
            shape = tuple(states[p] for p in nd["parents"]) + (nd["states"],)
            t = torch.full(shape, 1.0 / nd["states"]) if nd["table"] is None else torch.as_tensor(nd["table"])
            self.logits.append(nn.Parameter(t.to(torch.get_default_dtype()).log()))  # a 0 entry: -inf, impossible

    @property
    def levels(self) -> int | None:
        """The number of values each coordinate of the data takes (2 for binary), ``None`` for real data."""
        return max(nd["states"] for nd in self.nodes)

    _levels = levels  # what validate() checks integer data against

    def tables(self) -> list[torch.Tensor]:
        """The conditional probability tables, each ``(*parent states, states)``."""
        return [torch.softmax(t.detach(), -1) for t in self.logits]

    # -- data ------------------------------------------------------------------------------------------------------
    def validate(self, x: object, name: str = "x") -> torch.Tensor:
        """Integer rows ``(n, V)``; values in ``0..states-1`` of their node, or ``-1`` (missing)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor; got {type(x).__name__}")
        if x.is_floating_point() or x.dtype == torch.bool:
            raise TypeError(f"{name} must have an integer dtype; got {x.dtype}")
        if x.dim() != 2 or x.shape[1] != len(self.nodes):
            raise ValueError(f"{name} must have shape (n, {len(self.nodes)}); got {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{name} is empty")
        for v, nd in enumerate(self.nodes):
            col = x[:, v]
            bad = (col < -1) | (col >= nd["states"])
            if bad.any():
                k = nd["states"] - 1
                raise ValueError(
                    f"{name} must hold integers in 0..{k}; found {int(col[bad][0])} (node {nd['name']!r}; -1: missing)"
                )
        return x.long()

    # -- densities -------------------------------------------------------------------------------------------------
    def _log_tables(self) -> list[torch.Tensor]:
        return [torch.log_softmax(t, -1) for t in self.logits]

    def _log_joint_complete(self, x: torch.Tensor) -> torch.Tensor:
        tabs = self._log_tables()
        total = torch.zeros(len(x), dtype=tabs[0].dtype, device=x.device)
        for v, nd in enumerate(self.nodes):
            idx = tuple(x[:, self.index[p]] for p in nd["parents"]) + (x[:, v],)
            total = total + tabs[v][idx]
        return total

    def all_assignments(self) -> torch.Tensor:
        """Every joint assignment, ``(prod states, V)``."""
        grids = torch.meshgrid(*[torch.arange(nd["states"]) for nd in self.nodes], indexing="ij")
        return torch.stack([g.flatten() for g in grids], -1)

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(x_{\\mathrm{observed}})` per row: the product of the tables for complete rows, the
        missing values (``-1``) summed out by enumerating their joint states."""
        x = self.validate(x)
        missing = x < 0
        if not missing.any():
            return self._log_joint_complete(x)
        space = self.all_assignments().to(x.device)  # (S, V)
        log_joint = self._log_joint_complete(space)  # (S,)
        consistent = ((space[None] == x[:, None]) | missing[:, None]).all(-1)  # (n, S)
        return torch.logsumexp(torch.where(consistent, log_joint[None], -math.inf), -1)

    @torch.no_grad()
    def fit_counts(self, x: torch.Tensor) -> BayesNet:
        r"""The tables from complete rows: :math:`(n_{\mathrm{pa}, v} + \alpha) / (n_{\mathrm{pa}} + K\alpha)`.
        Returns the model.

        Raises:
            ValueError: a missing value (use :meth:`fit_em`, or gradient training of the marginal likelihood).
        """
        x = self.validate(x)
        if (x < 0).any():
            raise ValueError("fit_counts needs complete rows; with missing values (-1) use fit_em")
        self._tables_from_counts(x, torch.ones(len(x), dtype=self.logits[0].dtype))
        return self

    def _tables_from_counts(self, rows: torch.Tensor, weights: torch.Tensor) -> None:
        """The M-step: every table from the (expected) counts ``weights`` of complete ``rows``, plus ``alpha``."""
        for v, nd in enumerate(self.nodes):
            shape = self.logits[v].shape
            counts = torch.zeros(shape, dtype=self.logits[v].dtype)
            idx = tuple(rows[:, self.index[p]] for p in nd["parents"]) + (rows[:, v],)
            counts.index_put_(idx, weights.to(counts.dtype), accumulate=True)
            total = (counts + self.alpha).sum(-1, keepdim=True)
            # a parent configuration never seen (alpha=0) has no maximum-likelihood table: uniform
            probs = torch.where(total > 0, (counts + self.alpha) / total.clamp_min(1e-300), 1.0 / shape[-1])
            self.logits[v].copy_(probs.log())  # alpha=0 and a state never seen: probability 0, log -inf

    @torch.no_grad()
    def fit_em(self, x: torch.Tensor, iters: int = 200, tol: float = 1e-10) -> list[float]:
        r"""Expectation-maximization of the tables from rows with missing values (``-1``) (Dempster et al., 1977;
        Lauritzen, 1995): the E-step is the posterior of each row's missing values, by enumerating their joint
        states; the M-step the tables of :meth:`fit_counts` from the expected counts. Starts from the current
        tables; stops when the mean log-likelihood gains less than ``tol``.

        Returns:
            the mean marginal log-likelihood :math:`\log p(x_{\mathrm{observed}})` before each M-step and after
            the last: non-decreasing at ``alpha=0`` (with pseudo-counts EM raises the log-posterior instead).

        Raises:
            ValueError: a row of probability 0 under the starting tables, or more than 2**16 joint states.
        """
        x = self.validate(x)
        integer("iters", iters)
        space = self.all_assignments().to(x.device)  # (S, V)
        if len(space) > 2**16:
            raise ValueError(f"fit_em enumerates all {len(space):,} joint states; at most 2**16 are enumerated")
        missing = x < 0
        history: list[float] = []
        for _ in range(iters):
            lj = self._log_joint_complete(space)  # (S,)
            ll, expected = [], torch.zeros(len(space), dtype=lj.dtype, device=x.device)
            for rows, miss in zip(x.split(4096), missing.split(4096), strict=True):
                consistent = ((space[None] == rows[:, None]) | miss[:, None]).all(-1)  # (n, S)
                lw = torch.where(consistent, lj[None], -math.inf)
                l_rows = torch.logsumexp(lw, -1)
                if not bool(torch.isfinite(l_rows).all()):
                    raise ValueError("a row has probability 0 under the current tables; EM cannot start from them")
                expected += torch.exp(lw - l_rows[:, None]).sum(0)
                ll.append(l_rows)
            history.append(float(torch.cat(ll).mean()))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
            self._tables_from_counts(space, expected)
        else:
            history.append(float(self.log_prob(x).mean()))
        return history

    def sample(self, n: int) -> torch.Tensor:
        """``n`` rows by ancestral sampling."""
        check_positive_int("n", n)
        out = torch.zeros(n, len(self.nodes), dtype=torch.long)
        tabs = self.tables()
        for v in self.order:
            nd = self.nodes[v]
            probs = (
                tabs[v][tuple(out[:, self.index[p]] for p in nd["parents"])] if nd["parents"] else tabs[v].expand(n, -1)
            )
            out[:, v] = torch.multinomial(probs, 1)[:, 0]
        return out

    # -- the Pyro program and queries ---------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Each node a ``Categorical`` site named after it, in topological order, observed where ``x`` has a value
        (``-1`` or no ``x``: latent, enumerated in parallel).

        ``x`` is ``(n, V)`` rows, in the caller's plate at dim -1 if there is one (else a plate of the model's
        own, :func:`~pyrogen.inference.program.data_plate`), or one unbatched row ``(V,)`` with sites of batch
        shape ``()``. A single row gets no plate of the model's own (Pyro 1.9's ``compute_marginals`` fails on a
        plate of size 1); its sites keep the batch shape ``(1,)``."""
        pyro.module(self._param_store_name(), self)
        unbatched = x is not None and x.dim() == 1
        rows = None if x is None else (x[None] if unbatched else x)
        n = 1 if rows is None else len(rows)
        tabs = self._log_tables()
        values: dict[str, torch.Tensor] = {}
        with data_plate(None if n == 1 else n):
            for v in self.order:
                nd = self.nodes[v]
                logits = tabs[v][tuple(values[p] for p in nd["parents"])] if nd["parents"] else tabs[v]
                obs = None
                if rows is not None:
                    col = rows[:, v]
                    if (col < 0).any():
                        if not (col < 0).all():
                            raise ValueError(
                                f"node {nd['name']!r} is missing in some rows only: query rows one pattern at a time"
                            )
                    else:
                        obs = col[0] if unbatched else col
                d = dist.Categorical(logits=logits)
                if not unbatched:  # every site carries the rows' dim in its batch shape (compute_marginals needs it)
                    d = d.expand(torch.broadcast_shapes(d.batch_shape, (n,)))
                values[nd["name"]] = pyro.sample(nd["name"], d, obs=obs, infer={"enumerate": "parallel"})
        return values

    def _evidence_rows(self, evidence: dict[str, int]) -> torch.Tensor:
        row = torch.full((1, len(self.nodes)), -1, dtype=torch.long)
        for k, val in evidence.items():
            if k not in self.index:
                raise ValueError(f"evidence names an unknown node {k!r}; nodes are {', '.join(self.index)}")
            states = self.nodes[self.index[k]]["states"]
            if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val < states:
                raise ValueError(f"evidence {k}={val!r}: node {k!r} takes 0..{states - 1}")
            row[0, self.index[k]] = val
        return row

    def query(self, target: str | Sequence[str], evidence: dict[str, int] | None = None) -> torch.Tensor:
        """:math:`p(\\mathrm{target} \\mid \\mathrm{evidence})`, a probability vector, by Pyro's exact enumeration
        (``TraceEnum_ELBO.compute_marginals``); for a list of targets their joint table, shape
        ``(states_1, ..., states_k)``, by summing the joint over every assignment (as pgmpy's joint queries do).

        Raises:
            ValueError: an unknown or repeated node, a target that is also evidence, or a joint query over a
                network of more than 2**20 joint states.
        """
        from pyro.infer import TraceEnum_ELBO

        if isinstance(target, (list, tuple)):
            return self._joint_query(list(target), dict(evidence or {}))
        if target not in self.index:
            raise ValueError(f"unknown node {target!r}; nodes are {', '.join(self.index)}")
        evidence = dict(evidence or {})
        if target in evidence:
            raise ValueError(f"node {target!r} is both the target and evidence")
        row = self._possible(evidence)
        marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(self.model, self.guide, row)
        d = marginals[target]
        return torch.softmax(d.logits.detach().reshape(-1, self.nodes[self.index[target]]["states"])[0], -1)

    def _possible(self, evidence: dict[str, int]) -> torch.Tensor:
        """The evidence as one unbatched row, refused if it has probability 0 (nothing to condition on)."""
        row = self._evidence_rows(evidence)[0]
        with torch.no_grad():
            if not bool(torch.isfinite(self.log_prob(row))):
                raise ValueError(
                    f"the evidence {evidence} has probability 0 under the network: nothing to condition on"
                )
        return row

    def _joint_query(self, targets: list[str], evidence: dict[str, int]) -> torch.Tensor:
        unknown = [t for t in targets if t not in self.index]
        if unknown or not targets:
            raise ValueError(f"unknown nodes {unknown!r} in the targets; nodes are {', '.join(self.index)}")
        if len(set(targets)) != len(targets) or set(targets) & set(evidence):
            raise ValueError(f"targets {targets!r} must be distinct nodes and not evidence {sorted(evidence)}")
        row = self._possible(evidence)
        states = [self.nodes[self.index[t]]["states"] for t in targets]
        size = math.prod(nd["states"] for nd in self.nodes)
        if size > 2**20:
            raise ValueError(f"a joint query enumerates all {size:,} joint states; at most 2**20 are enumerated")
        space = self.all_assignments()
        with torch.no_grad():
            lj = self._log_joint_complete(space)
        seen = row >= 0
        lj = torch.where(((space == row) | ~seen).all(-1), lj, -math.inf)
        flat = torch.zeros(len(space), dtype=torch.long)
        for t, k in zip(targets, states, strict=True):
            flat = flat * k + space[:, self.index[t]]
        p = torch.zeros(math.prod(states), dtype=lj.dtype).index_add_(0, flat, torch.exp(lj - lj.max()))
        return (p / p.sum()).reshape(states)

    def map_assignment(self, evidence: dict[str, int] | None = None) -> dict[str, int]:
        """The most probable joint assignment of the unobserved nodes given ``evidence`` (``infer_discrete`` at
        temperature 0, i.e. max-product), with the evidence.

        Raises:
            ValueError: evidence of probability 0.
        """
        from pyro.infer import infer_discrete

        row = self._possible(dict(evidence or {}))[None]
        values = infer_discrete(self.model, first_available_dim=-2, temperature=0)(row)
        return {k: int(v.reshape(-1)[0]) for k, v in values.items()}
