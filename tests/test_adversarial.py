"""The adversarial objectives against the theory they rest on (Nowozin et al., 2016), by quadrature."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyrogen.inference import adversarial as adv

D64 = torch.float64
GRID = torch.linspace(-14.0, 14.0, 40001, dtype=D64)


def normal_pdf(x: torch.Tensor, mu: float, sd: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def integral(y: torch.Tensor) -> float:
    return float(torch.trapezoid(y, GRID))


P_MU, P_SD, Q_MU, Q_SD = 0.0, 1.0, 1.0, 1.3  # data p, generator q
p, q = normal_pdf(GRID, P_MU, P_SD), normal_pdf(GRID, Q_MU, Q_SD)


def jsd_by_quadrature() -> float:
    m = (p + q) / 2
    return 0.5 * integral(p * torch.log(p / m)) + 0.5 * integral(q * torch.log(q / m))


def kl_closed(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """KL(N(mu1, s1^2) || N(mu2, s2^2))."""
    return math.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5


class QuadraticLogit(nn.Module):
    """A discriminator whose logit a x^2 + b x + c can be log p/q exactly for two Gaussians."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=D64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w[0] * x**2 + self.w[1] * x + self.w[2]


@pytest.fixture(scope="module")
def trained_discriminator() -> QuadraticLogit:
    g = torch.Generator().manual_seed(0)
    n = 40000
    real = P_MU + P_SD * torch.randn(n, dtype=D64, generator=g)
    fake = Q_MU + Q_SD * torch.randn(n, dtype=D64, generator=g)
    d = QuadraticLogit()
    opt = torch.optim.LBFGS(d.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = adv.discriminator_loss(d(real), d(fake))
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    return d


def test_trained_discriminator_is_p_over_p_plus_q(trained_discriminator: QuadraticLogit) -> None:
    x = torch.linspace(-3, 4, 50, dtype=D64)
    with torch.no_grad():
        d = torch.sigmoid(trained_discriminator(x))
    optimal = normal_pdf(x, P_MU, P_SD) / (normal_pdf(x, P_MU, P_SD) + normal_pdf(x, Q_MU, Q_SD))
    assert (d - optimal).abs().max() < 0.02


def test_value_at_the_optimal_discriminator_is_2jsd_minus_log4(trained_discriminator: QuadraticLogit) -> None:
    with torch.no_grad():
        logit = trained_discriminator(GRID)
    # V(G, D) = E_p log D + E_q log(1 - D), by quadrature with the trained D
    value = integral(p * torch.nn.functional.logsigmoid(logit)) + integral(q * torch.nn.functional.logsigmoid(-logit))
    assert value == pytest.approx(2 * jsd_by_quadrature() - math.log(4), abs=2e-3)
    # and the loss function, on the exact optimum log p/q, gives log 4 - 2 JSD as a quadrature of its terms
    exact = torch.log(p / q)
    assert -value == pytest.approx(
        integral(p * torch.nn.functional.softplus(-exact)) + integral(q * torch.nn.functional.softplus(exact)),
        abs=2e-3,
    )
    assert 0 < jsd_by_quadrature() < math.log(2)


def test_kl_generator_loss_at_the_optimum_is_kl_q_p(trained_discriminator: QuadraticLogit) -> None:
    g = torch.Generator().manual_seed(1)
    fake = Q_MU + Q_SD * torch.randn(200000, dtype=D64, generator=g)
    with torch.no_grad():
        loss = adv.kl_generator_loss(trained_discriminator(fake))
        # minimax + non-saturating, term by term
        both = adv.minimax_generator_loss(trained_discriminator(fake)) + adv.nonsaturating_generator_loss(
            trained_discriminator(fake)
        )
    kl = kl_closed(Q_MU, Q_SD, P_MU, P_SD)
    assert float(both) == pytest.approx(float(loss), abs=1e-9)
    assert float(loss) == pytest.approx(kl, abs=0.02)


def test_minimax_generator_saturates_and_nonsaturating_does_not() -> None:
    # a generator G(z) = theta + z far in the region a confident discriminator rejects: D(G(z)) ~ 1e-9
    critic = lambda x: -4.0 * (x - 0.0) - 12.0  # noqa: E731  logit, very negative at theta = 2
    z = torch.randn(1000, dtype=D64, generator=torch.Generator().manual_seed(0)) * 0.1
    grads = {}
    for name, loss_fn in (("minimax", adv.minimax_generator_loss), ("ns", adv.nonsaturating_generator_loss)):
        theta = torch.tensor(2.0, dtype=D64, requires_grad=True)
        fake = critic(theta + z)
        (g,) = torch.autograd.grad(loss_fn(fake), theta)
        grads[name] = float(g)
        # closed form, l' = -4: d/dtheta E[-softplus(l)] = 4 E[sigmoid(l)], d/dtheta E[softplus(-l)] = 4 E[sigmoid(-l)]
        sig = torch.sigmoid(fake.detach() if name == "minimax" else -fake.detach())
        assert grads[name] == pytest.approx(float(4.0 * sig.mean()), rel=1e-9)
    assert abs(grads["minimax"]) < 1e-6 < 1.0 < abs(grads["ns"])
    # and as D(G(z)) -> 0 the minimax gradient goes to zero while the non-saturating one tends to |l'| = 4
    assert grads["ns"] == pytest.approx(4.0, rel=1e-4)


# -- f-divergences -------------------------------------------------------------------------------------------------
DIVERGENCES = [
    ("total-variation", {}),
    ("kl", {}),
    ("reverse-kl", {}),
    ("pearson", {}),
    ("neyman", {}),
    ("hellinger", {}),
    ("jeffrey", {}),
    ("jensen-shannon", {}),
    ("weighted-jensen-shannon", {"pi": 0.3}),
    ("gan", {}),
    ("alpha", {"alpha": 0.5}),
    ("alpha", {"alpha": 2.0}),
    ("alpha", {"alpha": -1.0}),
]


def by_name(name: str, kw: dict) -> adv.FDivergence:
    return adv.f_divergence(name, **kw)


def closed_form(name: str) -> float | None:
    """Closed forms where they exist, for p = N(P_MU, P_SD^2) and q = N(Q_MU, Q_SD^2)."""
    if name == "kl":
        return kl_closed(P_MU, P_SD, Q_MU, Q_SD)
    if name == "reverse-kl":
        return kl_closed(Q_MU, Q_SD, P_MU, P_SD)
    if name == "jeffrey":
        return kl_closed(P_MU, P_SD, Q_MU, Q_SD) + kl_closed(Q_MU, Q_SD, P_MU, P_SD)
    if name == "jensen-shannon":
        return 2 * jsd_by_quadrature()
    if name == "gan":
        return 2 * jsd_by_quadrature() - math.log(4)
    if name == "hellinger":  # 1 - BC, times 2: int (sqrt p - sqrt q)^2 = 2 - 2 BC
        s2 = P_SD**2 + Q_SD**2
        bc = math.sqrt(2 * P_SD * Q_SD / s2) * math.exp(-((P_MU - Q_MU) ** 2) / (4 * s2))
        return 2 - 2 * bc
    return None


@pytest.mark.parametrize(("name", "kw"), DIVERGENCES, ids=lambda v: str(v))
def test_variational_bound_is_tight_at_t_star_and_below_elsewhere(name: str, kw: dict) -> None:
    d = by_name(name, kw)
    u = p / q
    d_f = integral(q * d.f(u))
    exact = closed_form(name)
    if exact is not None:
        assert d_f == pytest.approx(exact, rel=1e-6, abs=1e-8)
    assert d_f > (-math.log(4) if name == "gan" else 0)  # the GAN divergence's f(1) = -log 4

    def bound(t: torch.Tensor) -> float:
        return integral(p * t) - integral(q * d.f_star(t))

    t_star = d.f_prime(u)
    assert bound(t_star) == pytest.approx(d_f, rel=1e-6, abs=1e-8)
    interior = d.activation(torch.zeros((), dtype=D64))  # a point inside the domain of f*
    for eps in (0.1, 0.3, 0.6):
        t = (1 - eps) * t_star + eps * interior  # the domain of f* is convex
        assert bound(t) < d_f - 1e-4
    # f* is the conjugate: f*(t) >= t u - f(u) for all u (Fenchel-Young), with equality at t = f'(u)
    v = torch.linspace(-4, 4, 81, dtype=D64)
    t = d.activation(v)
    us = torch.logspace(-3, 3, 301, dtype=D64)
    gap = d.f_star(t)[:, None] - (t[:, None] * us[None] - d.f(us)[None])
    assert float(gap.min()) > -1e-9
    assert torch.allclose(d.conjugate(v), d.f_star(t), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["kl", "gan", "hellinger", "pearson", "reverse-kl"])
def test_a_trained_critic_approaches_the_divergence_from_below(name: str) -> None:
    d = adv.f_divergence(name)
    g = torch.Generator().manual_seed(0)
    n = 8000
    real = (P_MU + P_SD * torch.randn(n, 1, generator=g)).double()
    fake = (Q_MU + Q_SD * torch.randn(n, 1, generator=g)).double()
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1)).double()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(600):
        opt.zero_grad()
        adv.fgan_critic_loss(critic(real), critic(fake), d).backward()
        opt.step()
    real2 = (P_MU + P_SD * torch.randn(50000, 1, generator=g)).double()
    fake2 = (Q_MU + Q_SD * torch.randn(50000, 1, generator=g)).double()
    with torch.no_grad():
        est = -float(adv.fgan_critic_loss(critic(real2), critic(fake2), d))
    d_f = integral(q * d.f(p / q))
    assert d_f - 0.1 * abs(d_f) - 0.01 < est < d_f + 0.02, (est, d_f)


def test_f_divergence_rejects_bad_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown f-divergence 'kll'"):
        adv.f_divergence("kll")
    with pytest.raises(ValueError, match="alpha must be"):
        adv.f_divergence("alpha", alpha=1.0)
    with pytest.raises(ValueError, match="pi must be"):
        adv.f_divergence("weighted-jensen-shannon", pi=1.5)
    with pytest.raises(ValueError, match="critic scores"):
        adv.discriminator_loss(torch.zeros(3, 2), torch.zeros(3))


def test_lambert_w_inverts_w_exp_w() -> None:
    w = torch.logspace(-6, 2, 50, dtype=D64)
    assert torch.allclose(adv.lambert_w(w * torch.exp(w)), w, rtol=1e-10)


# -- the Wasserstein critic on two narrow Gaussians -----------------------------------------
def critic_run(constraint: str, steps: int = 400) -> list[float]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    real = 0.02 * torch.randn(256, 1, generator=g)  # N(0, 0.02^2)
    fake = 1.0 + 0.02 * torch.randn(256, 1, generator=g)  # N(1, 0.02^2): W1 = 1
    critic = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = adv.wgan_critic_loss(critic(real), critic(fake))
        total = loss + (adv.gradient_penalty(critic, real, fake) if constraint == "gp" else 0)
        opt.zero_grad()
        total.backward()
        opt.step()
        if constraint == "clip":
            adv.clip_weights_(critic, 0.05)
        losses.append(loss.item())
    return losses


def test_unconstrained_critic_diverges_and_constrained_ones_stay_bounded() -> None:
    free = critic_run("none")
    assert free[-1] < -200 and free[-1] < 3 * free[199]  # still falling, faster and faster: no optimum
    gp = critic_run("gp", steps=800)
    assert min(gp) > -1.2 and gp[-1] < -0.9  # reaches -W1 = -1 and never goes far below
    clip = critic_run("clip")
    assert min(clip) > -1.2 and max(clip[-50:]) - min(clip[-50:]) < 0.05  # bounded and settled
