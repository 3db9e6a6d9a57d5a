r"""Text conditioning for the diffusion family: a small transformer text encoder and a U-Net whose feature
maps cross-attend to the caption's tokens (Rombach et al., 2022, §3.3, at small scale), with the empty
caption ``<bos>`` alone as the "no caption" input of classifier-free guidance (Ho and Salimans, 2021).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pyrogen.nn.diffusion import DenoisingUNet, _norm, _small_init

__all__ = ["CrossAttention", "TextEncoder", "TextUNet"]

PAD, BOS = 0, 1


class TextEncoder(nn.Module):
    """Token ids ``(n, L)`` (``0`` pads, ``1`` starts) to token features ``(n, L, dim)`` and a padding mask:
    learned word and position embeddings and ``layers`` pre-norm transformer encoder layers (Vaswani et al.,
    2017) that attend only to the caption's own tokens.

    Args:
        vocab: the vocabulary's size.
        max_tokens: the longest token sequence.
        dim, heads, layers: the transformer's width, attention heads and depth.
    """

    def __init__(self, vocab: int, max_tokens: int, dim: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(0.02 * torch.randn(max_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2 or tokens.shape[1] > len(self.positions) or (tokens[:, 0] != BOS).any():
            raise ValueError(
                f"tokens must be (n, L <= {len(self.positions)}) ids starting with <bos>; got {tuple(tokens.shape)}"
            )
        pad = tokens == PAD
        h = self.words(tokens) + self.positions[: tokens.shape[1]]
        return self.norm(self.encoder(h, src_key_padding_mask=pad)), pad


class CrossAttention(nn.Module):
    """Feature maps ``(n, C, H, W)`` attend to token features ``(n, L, D)``: queries from the normalized
    positions, keys and values from the tokens (padding masked), the result added back (its projection
    starts near zero, so a new block starts near the identity)."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = _norm(channels)
        heads = heads if channels % heads == 0 else 1
        self.attn = nn.MultiheadAttention(channels, heads, kdim=text_dim, vdim=text_dim, batch_first=True)
        _small_init(self.attn.out_proj)

    def forward(self, x: torch.Tensor, text: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)  # (n, HW, C)
        out, _ = self.attn(q, text, text, key_padding_mask=pad, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class TextUNet(DenoisingUNet):
    """:class:`~pyrogen.nn.diffusion.DenoisingUNet` conditioned on a caption: the caption's ``<bos>``
    feature joins the time embedding, and every residual block is followed by cross-attention to the
    caption's tokens. ``forward(x, c, tokens)``; ``tokens=None`` is the empty caption.

    Args:
        event_shape: ``(C, H, W)`` with even ``H`` and ``W``.
        vocab, max_tokens: the tokenizer's vocabulary size and longest sequence.
        features, emb_dim: as the U-Net's.
        text_dim, text_layers, heads: the text encoder's width and depth, and the attention heads.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        vocab: int,
        max_tokens: int,
        features: int = 32,
        emb_dim: int = 64,
        text_dim: int = 64,
        text_layers: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__(event_shape, features, emb_dim, classes=0)
        f = features
        self.text = TextEncoder(vocab, max_tokens, text_dim, heads, text_layers)
        self.pooled = nn.Linear(text_dim, emb_dim)
        self.attn = nn.ModuleDict(
            {
                "down1": CrossAttention(f, text_dim, heads),
                "mid1": CrossAttention(2 * f, text_dim, heads),
                "mid2": CrossAttention(2 * f, text_dim, heads),
                "up1": CrossAttention(f, text_dim, heads),
            }
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        if tokens is None:
            tokens = torch.full((len(x), 1), BOS, dtype=torch.long, device=x.device)
        text, pad = self.text(tokens)
        e = self.cond(c, None, x) + self.pooled(text[:, 0])
        a = self.attn
        h0 = a["down1"](self.down1(self.inp(x), e), text, pad)
        h = a["mid1"](self.mid1(self.pool(h0), e), text, pad)
        h = a["mid2"](self.mid2(h, e), text, pad)
        h = a["up1"](self.up1(torch.cat([self.upsample(h), h0], 1), e), text, pad)
        return self.out(torch.nn.functional.silu(self.out_norm(h)))
