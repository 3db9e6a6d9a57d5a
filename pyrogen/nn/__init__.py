"""Networks only: building blocks that the model families share.

Nothing here knows about probability; models in :mod:`pyrogen.models`
combine these networks with distributions.
"""

from __future__ import annotations

from pyrogen.nn.attention import CausalSelfAttention, CausalTransformer
from pyrogen.nn.conv import ConvDecoder, ConvEncoder, SpatialConvDecoder, SpatialConvEncoder
from pyrogen.nn.diffusion import DENOISER_ARCHS, DenoisingMLP, DenoisingUNet, sinusoidal_embedding
from pyrogen.nn.energy import ENERGY_ARCHS, EnergyNet
from pyrogen.nn.masked import (
    MADENet,
    MaskedConv2d,
    MaskedLinear,
    made_degrees,
    made_masks,
    pixel_mask,
)
from pyrogen.nn.mlp import MLP, soft_clip
from pyrogen.nn.pixelcnn import GatedPixelCNNNet, PixelCNNNet
from pyrogen.nn.pixelrnn import PIXELRNN_CELLS, PixelRNNNet
from pyrogen.nn.text import CrossAttention, TextEncoder, TextUNet

__all__ = [
    "DENOISER_ARCHS",
    "DenoisingMLP",
    "DenoisingUNet",
    "sinusoidal_embedding",
    "ENERGY_ARCHS",
    "EnergyNet",
    "MLP",
    "soft_clip",
    "CausalSelfAttention",
    "CausalTransformer",
    "ConvDecoder",
    "ConvEncoder",
    "CrossAttention",
    "GatedPixelCNNNet",
    "MADENet",
    "MaskedConv2d",
    "MaskedLinear",
    "PixelCNNNet",
    "PIXELRNN_CELLS",
    "PixelRNNNet",
    "SpatialConvDecoder",
    "SpatialConvEncoder",
    "TextEncoder",
    "TextUNet",
    "made_degrees",
    "made_masks",
    "pixel_mask",
]
