"""Model families, one module each, and the registry that lists them.

Every model is a :class:`~pyrogen.models.base.GenerativeModel` (a
``PyroModule``) registered under the name users type (``pyrogen list``).
"""

from __future__ import annotations

from pyrogen.models import registry
from pyrogen.models.autoencoder import Autoencoder
from pyrogen.models.autoregressive import (
    FVSBN,
    MADE,
    NADE,
    RNADE,
    AutoregressiveModel,
    CharRNN,
    GatedPixelCNN,
    PixelCNN,
    PixelRNN,
    Transformer,
)
from pyrogen.models.base import GenerativeModel
from pyrogen.models.boltzmann import DBM, RBM, BoltzmannMachine
from pyrogen.models.diffusion import (
    DDPM,
    FFJORD,
    NCSN,
    DiffusionModel,
    FlowMatching,
    LatentDiffusion,
    ScoreSDE,
    TextDiffusion,
)
from pyrogen.models.ebm import EBM, NCEEBM, AdversarialEBM, EnergyModel, FlowContrastiveEBM, ScoreMatchingEBM
from pyrogen.models.flows import (
    IAF,
    MAF,
    NICE,
    NSF,
    FlowModel,
    GaussianizationFlow,
    Glow,
    MintNet,
    PlanarFlow,
    RealNVP,
)
from pyrogen.models.gan import (
    CGAN,
    FGAN,
    GAN,
    KLGAN,
    NSGAN,
    WGAN,
    WGANGP,
    AdversarialModel,
    BiGAN,
    CycleGAN,
)
from pyrogen.models.graphical import BayesNet, NaiveBayes
from pyrogen.models.hmm import HiddenMarkovModel
from pyrogen.models.implicit_vae import ImplicitVAE
from pyrogen.models.kde import KernelDensity
from pyrogen.models.mixture import GaussianMixture
from pyrogen.models.progressive import ProVAE
from pyrogen.models.sequence import TDVAE, VRNN
from pyrogen.models.vae import (
    CVAE,
    IWAE,
    SSVAE,
    VAE,
    BetaVAE,
    FlowVAE,
    HierarchicalVAE,
    LadderVAE,
    LatentVariableModel,
    MixturePriorVAE,
)

__all__ = [
    "Autoencoder",
    "ProVAE",
    "TDVAE",
    "VRNN",
    "NaiveBayes",
    "BayesNet",
    "GaussianMixture",
    "HiddenMarkovModel",
    "KernelDensity",
    "DBM",
    "RBM",
    "BoltzmannMachine",
    "DDPM",
    "NCSN",
    "DiffusionModel",
    "FlowMatching",
    "FFJORD",
    "LatentDiffusion",
    "ScoreSDE",
    "TextDiffusion",
    "EBM",
    "ImplicitVAE",
    "AdversarialEBM",
    "FlowContrastiveEBM",
    "NCEEBM",
    "EnergyModel",
    "ScoreMatchingEBM",
    "CGAN",
    "FGAN",
    "GAN",
    "KLGAN",
    "NSGAN",
    "WGAN",
    "WGANGP",
    "AdversarialModel",
    "BiGAN",
    "CycleGAN",
    "CVAE",
    "FVSBN",
    "IWAE",
    "SSVAE",
    "BetaVAE",
    "FlowVAE",
    "HierarchicalVAE",
    "LadderVAE",
    "LatentVariableModel",
    "MintNet",
    "NSF",
    "MixturePriorVAE",
    "IAF",
    "MAF",
    "MADE",
    "NICE",
    "NADE",
    "RNADE",
    "VAE",
    "AutoregressiveModel",
    "CharRNN",
    "FlowModel",
    "GatedPixelCNN",
    "GaussianizationFlow",
    "GenerativeModel",
    "Glow",
    "PixelCNN",
    "PixelRNN",
    "PlanarFlow",
    "RealNVP",
    "Transformer",
    "registry",
]
