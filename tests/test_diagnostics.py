"""ArviZ bridge: summaries, ESS and R-hat on a Gaussian target with a known answer."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen import diagnostics
from pyrogen.inference import nuts, run_chains

MU, SD = np.array([1.0, -2.0]), np.array([0.5, 2.0])


def _check(table, names):
    for i, name in enumerate(names):
        row = table.loc[name]
        assert abs(row["mean"] - MU[i]) < 5 * row["mcse_mean"] + 0.05, row
        assert row["sd"] == pytest.approx(SD[i], rel=0.25)
        assert row["r_hat"] < 1.05 and row["ess_bulk"] > 50


def _model():
    pyro.sample("theta", dist.Normal(torch.tensor(MU), torch.tensor(SD)).to_event(1))


def test_pyro_mcmc_with_a_model_two_chains():
    runs = run_chains(lambda: nuts(_model), num_chains=2, num_samples=300, warmup_steps=200, seed=0)
    idata = diagnostics.from_pyro(runs)
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 300
    assert "diverging" in idata.sample_stats
    _check(diagnostics.summary(idata), ["theta[0]", "theta[1]"])


def test_pyro_mcmc_with_only_a_potential():
    mu, sd = torch.tensor(MU), torch.tensor(SD)

    def potential(p):
        return 0.5 * (((p["theta"] - mu) / sd) ** 2).sum()

    runs = run_chains(
        lambda: nuts(potential_fn=potential),
        num_chains=2,
        num_samples=300,
        warmup_steps=200,
        initial_params={"theta": torch.zeros(2, dtype=torch.float64)},
        seed=1,
    )
    _check(diagnostics.summary(runs), ["theta[0]", "theta[1]"])


def test_single_pyro_run_goes_through_arviz_from_pyro():
    pyro.set_rng_seed(0)
    mcmc = pyro.infer.MCMC(nuts(_model), num_samples=50, warmup_steps=50, disable_progbar=True)
    mcmc.run()
    idata = diagnostics.from_pyro(mcmc)
    assert idata.posterior["theta"].shape == (1, 50, 2)


@pytest.mark.slow
def test_numpyro_run():
    import jax
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.infer import MCMC, NUTS

    def model():
        numpyro.sample("theta", ndist.Normal(jax.numpy.array(MU), jax.numpy.array(SD)).to_event(1))

    mcmc = MCMC(
        NUTS(model),
        num_warmup=300,
        num_samples=500,
        num_chains=2,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0))
    idata = diagnostics.from_numpyro(mcmc)
    assert idata.posterior.sizes["chain"] == 2
    _check(diagnostics.summary(idata), ["theta[0]", "theta[1]"])


def test_plain_chains_and_rhat_detects_disagreeing_chains():
    rng = np.random.default_rng(0)
    good = MU + SD * rng.normal(size=(2, 1000, 2))
    _check(diagnostics.summary({"theta": good}), ["theta[0]", "theta[1]"])
    bad = good.copy()
    bad[1] += 3.0  # the second chain sits elsewhere
    table = diagnostics.summary(
        diagnostics.from_chains({"theta": bad}, sample_stats={"energy": rng.normal(size=(2, 1000))})
    )
    assert (table["r_hat"] > 1.2).all()  # 1.83 and 1.34 here; well-mixed chains give < 1.01


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        ({}, "samples is empty"),
        ({"a": np.zeros(5)}, r"shape \(chains, draws, ...\)"),
        ({"a": np.zeros((2, 5)), "b": np.zeros((3, 5))}, r"\(chains, draws\) = \(3, 5\)"),
        ({"a": np.full((2, 5), np.nan)}, "non-finite"),
    ],
)
def test_bad_chains_raise(samples, match):
    with pytest.raises(ValueError, match=match):
        diagnostics.from_chains(samples)


def test_run_chains_checks_its_arguments():
    with pytest.raises(ValueError, match="num_chains must be an integer >= 1; got 0"):
        run_chains(lambda: nuts(_model), num_chains=0)
    with pytest.raises(ValueError, match="exactly one of model and potential_fn"):
        nuts()
