"""Inference: the model protocol, objectives, samplers and the trainer."""

from __future__ import annotations

from pyrogen.inference.amortization import LocalPosterior, amortization_gap, latent_nuts, optimize_local_posterior
from pyrogen.inference.distillation import DistillResult, distill
from pyrogen.inference.guides import FLOW_GUIDE_KINDS, flow_guide, flow_transform
from pyrogen.inference.hooks import EMA, ReplayBuffer, StepClock, TrainingHook
from pyrogen.inference.mcmc import nuts, run_chains
from pyrogen.inference.objectives import (
    ELBO,
    CrossEntropy,
    ImplicitELBO,
    JointLikelihood,
    MaximumLikelihood,
    Objective,
    Part,
    Phases,
    SemiSupervisedELBO,
    gaussian_kl,
    iwae_bound,
    log_mean_exp,
    objective_for,
)
from pyrogen.inference.program import data_plate
from pyrogen.inference.protocol import (
    DENSITY_KINDS,
    Density,
    GenerativeModelProtocol,
    training_data,
)
from pyrogen.inference.samplers import (
    HMC,
    MALA,
    AnnealedLangevin,
    Chains,
    ChainState,
    ChEES,
    Langevin,
    PyroKernel,
    RandomWalkMH,
    sample_chains,
)
from pyrogen.inference.trainer import FitResult, TrainConfig, TrainingDiverged, fit, latest_checkpoint

__all__ = [
    "CrossEntropy",
    "ELBO",
    "ImplicitELBO",
    "JointLikelihood",
    "MaximumLikelihood",
    "Objective",
    "Part",
    "Phases",
    "SemiSupervisedELBO",
    "StepClock",
    "objective_for",
    "AnnealedLangevin",
    "ChainState",
    "ChEES",
    "Chains",
    "HMC",
    "Langevin",
    "MALA",
    "PyroKernel",
    "RandomWalkMH",
    "sample_chains",
    "DENSITY_KINDS",
    "FLOW_GUIDE_KINDS",
    "Density",
    "DistillResult",
    "EMA",
    "FitResult",
    "LocalPosterior",
    "GenerativeModelProtocol",
    "ReplayBuffer",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingHook",
    "amortization_gap",
    "data_plate",
    "distill",
    "fit",
    "training_data",
    "flow_guide",
    "flow_transform",
    "gaussian_kl",
    "iwae_bound",
    "latent_nuts",
    "latest_checkpoint",
    "log_mean_exp",
    "nuts",
    "optimize_local_posterior",
    "run_chains",
]
