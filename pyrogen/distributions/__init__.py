"""Pyro distributions and transforms that Pyro itself does not provide.

Everything Pyro already has (affine coupling, autoregressive transforms,
permutations, planar, spline, batch norm, generalized channel permute) is used
from :mod:`pyro.distributions` directly; the model families add their
autoregressive, energy-based and implicit distributions and their missing flow
layers here.
"""

from __future__ import annotations

from pyrogen.distributions.autoregressive import (
    AutoregressiveDistribution,
    BernoulliConditionals,
    CategoricalConditionals,
    GaussianMixtureConditionals,
    make_conditionals,
)
from pyrogen.distributions.discretized import DiscretizedNormal
from pyrogen.distributions.energy import EnergyDistribution, NumericalDensity
from pyrogen.distributions.flow import FlowDistribution, forward_and_log_det, inverse_and_log_det
from pyrogen.distributions.implicit import ImplicitDistribution
from pyrogen.distributions.kernel import KernelDensityDistribution, kernel_log_density

__all__ = [
    "DiscretizedNormal",
    "NumericalDensity",
    "AutoregressiveDistribution",
    "BernoulliConditionals",
    "EnergyDistribution",
    "CategoricalConditionals",
    "FlowDistribution",
    "GaussianMixtureConditionals",
    "ImplicitDistribution",
    "KernelDensityDistribution",
    "kernel_log_density",
    "forward_and_log_det",
    "inverse_and_log_det",
    "make_conditionals",
]
