r"""Uses of a learned latent space: interpolation, latent arithmetic, class means, imputation, and
conditioning through a generator (:func:`generator_posterior`) or under an energy-based prior
(:func:`energy_posterior`).

These work with any model that has ``encode(x) -> (loc, scale)`` and
``decode(z) -> mean image`` (every :class:`~pyrogen.models.VAE`). Latent
codes are the posterior means :math:`\mu_\phi(x)`.

Example:
    >>> import torch
    >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    >>> slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    tensor([[1.0000, 0.0000],
            [0.7071, 0.7071],
            [0.0000, 1.0000]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pyrogen.inference.protocol import ChainStart, EnergyFunction, Generates

__all__ = [
    "INTERPOLATIONS",
    "EnergyPosterior",
    "GeneratorPosterior",
    "class_means",
    "energy_posterior",
    "energy_program",
    "generator_posterior",
    "generator_program",
    "impute",
    "interpolate",
    "latent_arithmetic",
    "lerp",
    "slerp",
]

#: The paths :func:`interpolate` draws between two codes.
INTERPOLATIONS = ("linear", "spherical")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points :math:`(1 - t) a + t b`, one row per value of ``t``."""
    t = t.reshape(-1, *([1] * a.dim()))
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Spherical interpolation (White, 2016, arXiv:1609.04468), one row per value of ``t``.

    .. math::
        \mathrm{slerp}(a, b; t) = \frac{\sin((1 - t)\Omega)}{\sin \Omega} a + \frac{\sin(t\Omega)}{\sin \Omega} b,
        \quad \cos \Omega = \frac{a \cdot b}{\|a\| \|b\|}

    It keeps the norm near that of typical draws from a Gaussian prior, where the straight line passes close to
    the origin; for (anti)parallel ``a`` and ``b`` it falls back to :func:`lerp`.
    """
    cos = (a * b).sum() / (a.norm() * b.norm()).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1 + eps, 1 - eps))
    if float(omega.sin()) < 1e-4:
        return lerp(a, b, t)
    t = t.reshape(-1, *([1] * a.dim()))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / omega.sin()


def _code(model: Any, x: torch.Tensor) -> torch.Tensor:
    loc, _ = model.encode(x)
    return loc


@torch.no_grad()
def interpolate(model: Any, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, method: str = "linear") -> torch.Tensor:
    """Decoded images along the path between the codes of two examples.

    Args:
        model: a model with ``encode`` and ``decode``.
        x1, x2: one example each, shape ``event_shape`` (or ``(1,) + event_shape``).
        steps: points on the path, both ends included (at least 2).
        method: ``"linear"`` or ``"spherical"``.

    Returns:
        ``(steps,) + event_shape`` mean images.

    Raises:
        ValueError: an unknown ``method``, ``steps < 2``, or ``x1``/``x2`` not one example.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {INTERPOLATIONS}; got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
    shape = tuple(model.event_shape)
    for name, v in (("x1", x1), ("x2", x2)):
        if not isinstance(v, torch.Tensor) or v.shape not in (torch.Size(shape), torch.Size((1, *shape))):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be one example of shape {shape}; got {got}")
    pair = torch.stack([x1.reshape(shape), x2.reshape(shape)])
    a, b = _code(model, pair)
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)
    return model.decode(lerp(a, b, t) if method == "linear" else slerp(a, b, t))


@torch.no_grad()
def class_means(model: Any, x: torch.Tensor, labels: torch.Tensor, classes: int | None = None) -> torch.Tensor:
    """The mean latent code of each class, shape ``(classes, L)``.

    Raises:
        ValueError: a class without examples, or labels of the wrong length.
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point or len(labels) != len(x):
        raise ValueError(
            f"labels must be a 1-D integer tensor with one entry per example ({len(x)}); "
            f"got shape {tuple(labels.shape)} {labels.dtype}"
        )
    codes = _code(model, x)
    k = classes or int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no examples")
    sums = torch.zeros(k, codes.shape[-1], dtype=codes.dtype, device=codes.device).index_add_(0, labels, codes)
    return sums / counts[:, None].to(codes.dtype)


@torch.no_grad()
def latent_arithmetic(
    model: Any, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, strength: float = 1.0
) -> torch.Tensor:
    r"""Decode :math:`\mu_\phi(x) + s\,(\bar z_{\text{target}} - \bar z_{\text{source}})`.

    With ``source`` and ``target`` two class means (:func:`class_means`) this moves examples of one class towards
    another: the "add the difference of two class means" of the latent-arithmetic literature.

    Returns:
        Mean images, shape ``x.shape``.
    """
    return model.decode(_code(model, x) + strength * (target - source))


@torch.no_grad()
def impute(
    model: Any, x: torch.Tensor, observed: torch.Tensor, steps: int = 200, burn_in: int = 50
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fill in the unobserved entries of ``x`` by pseudo-Gibbs sampling through the encoder and decoder.

    Repeats :math:`z \sim q(z \mid \hat x)`, :math:`\hat x_{\text{miss}} \sim p(x_{\text{miss}} \mid z)`
    with the observed entries held fixed (Rezende, Mohamed and Wierstra, 2014, appendix F). When :math:`q` is the
    exact posterior this is a Gibbs sampler of :math:`p(z, x_{\text{miss}} \mid x_{\text{obs}})`; with an
    amortized :math:`q` it is the usual approximation.

    Args:
        model: an unconditional model with ``encode`` and ``likelihood`` (a :class:`~pyrogen.models.VAE`).
        x: examples, ``(n,) + event_shape``; the values at unobserved entries are ignored.
        observed: boolean mask broadcastable to ``x``, ``True`` where the entry is known.
        steps: sweeps of the chain; burn_in: sweeps left out of the running mean.

    Returns:
        ``(draw, mean)``: the chain's last state (a completed example, observed entries unchanged) and the average
        of :math:`\mathbb E[x \mid z]` over the sweeps after ``burn_in`` (observed entries unchanged), an estimate
        of :math:`\mathbb E[x_{\text{miss}} \mid x_{\text{obs}}]`.

    Raises:
        ValueError: ``observed`` not boolean or not broadcastable, or ``burn_in >= steps``.
    """
    observed = _mask(observed, x)
    for name, v in (("steps", steps), ("burn_in", burn_in)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {v!r}")
    if burn_in >= steps:
        raise ValueError(f"burn_in ({burn_in}) must be smaller than steps ({steps})")
    x = model.validate(x)
    start = model.likelihood(model.sample_latent(len(x))).sample()  # unobserved entries start at a draw of p(x)
    current = torch.where(observed, x, start.to(x.dtype))
    total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    for t in range(steps):
        loc, scale = model.encode(current)
        z = loc + torch.randn_like(loc) * scale
        d = model.likelihood(z)
        current = torch.where(observed, x, d.sample().to(x.dtype))
        if t >= burn_in:
            total += model.decode(z).double()
    mean = torch.where(observed, x.double(), total / (steps - burn_in)).to(
        x.dtype if x.is_floating_point() else torch.float64
    )
    return current, mean


# -- conditioning through a generator -------------------------------------------------------------------------------
def _mask(observed: object, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool:
        raise ValueError(f"observed must be a boolean tensor; got {getattr(observed, 'dtype', type(observed))}")
    try:
        return observed.to(x.device).expand_as(x)
    except RuntimeError:
        raise ValueError(
            f"observed of shape {tuple(observed.shape)} does not broadcast to x {tuple(x.shape)}"
        ) from None


def generator_program(model: Any, likelihood: str = "bernoulli", scale: float = 0.1) -> Any:
    r"""The Pyro model :math:`z \sim \mathcal N(0, I)`, :math:`x_{\text{obs}} \sim p(x_{\text{obs}} \mid G(z))`.

    ``program(x, observed)``: one latent code per example (a ``pyro.plate``), the entries of ``x`` where the
    boolean mask ``observed`` holds scored under ``Bernoulli(G(z))`` (``likelihood="bernoulli"``, for binary
    pixels; the generator's grey levels as probabilities) or ``Normal(G(z), scale)`` (``"normal"``). Any
    generator with ``generate(z)`` and ``latent_dim`` (every GAN of :mod:`pyrogen.models.gan`) will do; its
    weights stay fixed (they are not Pyro parameters).

    Raises:
        ValueError: an unknown likelihood or a non-positive scale.
    """
    import pyro
    import pyro.distributions as dist

    if likelihood not in ("bernoulli", "normal"):
        raise ValueError(f"likelihood must be 'bernoulli' or 'normal'; got {likelihood!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be a positive number; got {scale!r}")

    def program(x: torch.Tensor, observed: torch.Tensor) -> None:
        ref = x if x.is_floating_point() else torch.zeros((), dtype=torch.get_default_dtype(), device=x.device)
        loc = torch.zeros(model.latent_dim, dtype=ref.dtype, device=x.device)
        with pyro.plate("examples", len(x)):
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            out = model.generate(z.reshape(-1, model.latent_dim)).reshape(*z.shape[:-1], *x.shape[1:])
            if likelihood == "bernoulli":
                d = dist.Bernoulli(probs=out.clamp(1e-4, 1 - 1e-4))
            else:
                d = dist.Normal(out, scale)
            pyro.sample("x", d.mask(observed).to_event(x.dim() - 1), obs=x.to(out.dtype))

    return program


@dataclass
class GeneratorPosterior:
    r"""What :func:`generator_posterior` returns.

    Attributes:
        mean: :math:`\mathbb E[G(z) \mid x_{\text{obs}}]` with the observed entries put back, ``x``'s shape.
        z: posterior draws of the codes, ``(draws, n, latent_dim)``.
        idata: ArviZ ``InferenceData`` of the NUTS chains (``None`` for SVI).
        losses: SVI's ELBO losses per step (empty for NUTS).
    """

    mean: torch.Tensor
    z: torch.Tensor
    idata: Any
    losses: list[float]


def generator_posterior(
    model: Any,
    x: torch.Tensor,
    observed: torch.Tensor,
    method: str = "nuts",
    likelihood: str = "bernoulli",
    scale: float = 0.1,
    num_chains: int = 2,
    num_samples: int = 200,
    warmup_steps: int = 200,
    svi_steps: int = 1000,
    lr: float = 0.05,
    seed: int = 0,
    max_tree_depth: int = 10,
) -> GeneratorPosterior:
    r"""Complete ``x`` from its ``observed`` entries through a trained generator: the posterior over :math:`z`.

    Runs Pyro's NUTS (``method="nuts"``: ``num_chains`` chains, one after another, joined into ArviZ
    ``InferenceData`` with divergences, so ``az.summary`` gives R-hat and ESS) or SVI with an ``AutoNormal``
    guide (``"svi"``) on :func:`generator_program`; the completion is the posterior mean of :math:`G(z)`.
    An implicit model cannot be conditioned by its density, which it lacks; its latent code can.

    Raises:
        ValueError: a model without ``generate``, an unknown method or likelihood, a bad mask.
    """
    import pyro
    from pyro.infer import NUTS, SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    from pyrogen import diagnostics
    from pyrogen.inference.mcmc import run_chains

    _require(model, Generates, "has no generator generate(z) to condition through")
    if method not in ("nuts", "svi"):
        raise ValueError(f"method must be 'nuts' or 'svi'; got {method!r}")
    x = model.validate(x)
    observed = _mask(observed, x)
    program = generator_program(model, likelihood, scale)
    idata, losses = None, []
    if method == "nuts":
        runs = run_chains(
            lambda: NUTS(program, target_accept_prob=0.8, max_tree_depth=max_tree_depth),
            num_chains=num_chains,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
            model_args=(x, observed),
        )
        idata = diagnostics.from_pyro(runs)
        z = torch.cat([r.get_samples()["z"] for r in runs])
    else:
        if not isinstance(svi_steps, int) or isinstance(svi_steps, bool) or svi_steps < 1:
            raise ValueError(f"svi_steps must be a positive integer; got {svi_steps!r}")
        pyro.set_rng_seed(seed)
        with pyro.get_param_store().scope():  # the guide's parameters live in a store of their own
            guide = AutoNormal(program)
            optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": 0.1 ** (1 / svi_steps)})
            svi = SVI(program, guide, optim, Trace_ELBO())
            for _ in range(svi_steps):
                losses.append(float(svi.step(x, observed)))
            with torch.no_grad():
                z = torch.stack([guide(x, observed)["z"] for _ in range(num_samples)])
    with torch.no_grad():
        out = torch.stack([model.generate(zi) for zi in z]).mean(0)
    mean = torch.where(observed, x.to(out.dtype), out)
    return GeneratorPosterior(mean=mean, z=z.detach(), idata=idata, losses=losses)


def energy_program(model: Any, scale: float = 0.05) -> Any:
    r"""The Pyro model with a trained EBM as the prior over a whole example and the observed entries as noisy
    readings of it:

    .. math:: x \sim p_\theta(x) \propto e^{f_\theta(x)},\qquad y_{\text{obs}} \sim N(x_{\text{obs}}, s^2),

    ``program(y, observed)``: one ``x`` per example (a ``pyro.plate``), uniform on the unit cube (images) or
    a Gaussian ten times wider than the data's range (real data) as the base measure, the EBM's
    :math:`f_\theta` added by ``pyro.factor``
    (its unknown :math:`\log Z` is a constant, which MCMC ignores). A small ``scale`` completes the
    unobserved entries; a larger one also denoises the observed ones. The EBM's weights stay fixed.

    Raises:
        ValueError: a model without an energy network, or a non-positive scale.
    """
    import pyro
    import pyro.distributions as dist

    _require(model, EnergyFunction, "is not an energy-based model (no unnormalized_log_prob)")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    event = tuple(model.event_shape)

    def program(y: torch.Tensor, observed: torch.Tensor) -> None:
        with pyro.plate("examples", len(y)):
            zeros = torch.zeros(event, dtype=y.dtype, device=y.device)
            if model.support == "unit_interval":
                base = dist.Uniform(zeros, zeros + 1)
            else:  # practically flat over the data's range (an improper prior gives MCMC no initial point)
                base = dist.Normal(zeros, 10 * _init_scale(model))
            x = pyro.sample("x", base.to_event(len(event)))
            pyro.factor("energy", model.f(x))
            lik = dist.Normal(x, scale).mask(observed).to_event(len(event))
            pyro.sample("y", lik, obs=y)

    return program


@dataclass
class EnergyPosterior:
    r"""What :func:`energy_posterior` returns.

    Attributes:
        mean: :math:`\mathbb E[x \mid y_{\text{obs}}]`, ``y``'s shape.
        x: posterior draws, ``(draws, n, *event_shape)``.
        idata: ArviZ ``InferenceData`` of the chains (R-hat, ESS, divergences).
    """

    mean: torch.Tensor
    x: torch.Tensor
    idata: Any


def energy_posterior(
    model: Any,
    y: torch.Tensor,
    observed: torch.Tensor,
    method: str = "mala",
    scale: float = 0.05,
    num_chains: int = 2,
    num_samples: int = 200,
    warmup_steps: int = 200,
    seed: int = 0,
    step_size: float = 0.01,
    max_tree_depth: int = 10,
) -> EnergyPosterior:
    r"""Complete (or denoise) ``y`` from its ``observed`` entries with a trained EBM as the prior: the
    posterior over the whole example under :func:`energy_program`, sampled by Pyro's ``MCMC`` with
    pyrogen's MALA kernel (``method="mala"``, :class:`~pyrogen.inference.samplers.PyroKernel`, step size
    adapted in warm-up) or with Pyro's NUTS (``"nuts"``, trees of depth at most ``max_tree_depth``),
    ``num_chains`` chains joined into ArviZ. ``"batched-mala"`` runs the same posterior (in the same
    unconstrained space: logits for images) with pyrogen's batched MALA, one chain per example and chain
    index, each with its own step size: Pyro's MCMC sees all examples as one chain with one step size.

    Raises:
        ValueError: a model that is not an EBM, an unknown method, a bad mask.
    """
    from pyro.infer import NUTS

    from pyrogen import diagnostics
    from pyrogen.inference.mcmc import run_chains
    from pyrogen.inference.samplers import MALA, PyroKernel

    if method not in ("mala", "nuts", "batched-mala"):
        raise ValueError(f"method must be 'mala', 'nuts' or 'batched-mala'; got {method!r}")
    program = energy_program(model, scale)
    y = model.validate(y)
    observed = _mask(observed, y)
    if method == "batched-mala":
        return _batched_mala_posterior(
            model, y, observed, scale, num_chains, num_samples, warmup_steps, seed, step_size
        )

    def kernel() -> Any:
        if method == "mala":
            return PyroKernel(MALA, model=program, step_size=step_size)
        return NUTS(program, target_accept_prob=0.8, max_tree_depth=max_tree_depth)

    was = model.training
    model.eval()
    try:
        runs = run_chains(
            kernel,
            num_chains=num_chains,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
            model_args=(y, observed),
        )
    finally:
        model.train(was)
    xs = torch.cat([r.get_samples()["x"] for r in runs]).detach()
    return EnergyPosterior(mean=xs.mean(0), x=xs, idata=diagnostics.from_pyro(runs))


def _batched_mala_posterior(
    model: Any,
    y: torch.Tensor,
    observed: torch.Tensor,
    scale: float,
    num_chains: int,
    num_samples: int,
    warmup_steps: int,
    seed: int,
    step_size: float,
) -> EnergyPosterior:
    import pyro.distributions as dist

    from pyrogen import diagnostics
    from pyrogen.inference.samplers import MALA, sample_chains

    n, event = len(y), tuple(y.shape[1:])
    unit = model.support == "unit_interval"
    width = 10 * _init_scale(model)
    ys, mask = y.repeat(num_chains, *([1] * len(event))), observed.repeat(num_chains, *([1] * len(event)))

    def to_x(u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(u) if unit else u

    def log_target(u: torch.Tensor) -> torch.Tensor:
        x = to_x(u)
        lik = (dist.Normal(x, scale).log_prob(ys) * mask).flatten(1).sum(-1)
        if unit:  # the uniform base on the cube, in logit coordinates: log |dx/du|
            base = (torch.nn.functional.logsigmoid(u) + torch.nn.functional.logsigmoid(-u)).flatten(1).sum(-1)
        else:
            base = dist.Normal(0.0, width).log_prob(u).flatten(1).sum(-1)
        return model.f(x) + lik + base

    torch.manual_seed(seed)
    u0 = torch.rand_like(ys) * 4 - 2  # Pyro's init_to_uniform: uniform in (-2, 2), unconstrained
    was = model.training
    model.eval()
    try:
        ch = sample_chains(MALA(log_target, step_size), u0, num_samples, warmup_steps=warmup_steps)
    finally:
        model.train(was)
    x = to_x(ch.samples).detach().reshape(num_chains, n, num_samples, *event).transpose(1, 2)  # (C, draws, n, ...)
    stats = {k: v.reshape(num_chains, n, num_samples).mean(1) for k, v in ch.stats.items() if v.dtype != torch.bool}
    stats["diverging"] = ch.stats["diverging"].reshape(num_chains, n, num_samples).any(1)
    idata = diagnostics.from_chains({"x": x}, stats)
    draws = x.reshape(num_chains * num_samples, n, *event)
    return EnergyPosterior(mean=draws.mean(0), x=draws, idata=idata)


def _init_scale(model: Any) -> float:
    """Where the model's chains start (``init_scale``), 10 where it says nothing."""
    return float(model.init_scale) if isinstance(model, ChainStart) else 10.0


def _require(model: Any, protocol: type, what: str) -> None:
    """Raise ``ValueError`` (the model's class and ``what``) unless ``model`` implements ``protocol``."""
    if not isinstance(model, protocol):
        raise ValueError(f"{type(model).__name__} {what}")
