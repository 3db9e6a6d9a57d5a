"""Causal self-attention and a small GPT-style transformer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalSelfAttention", "CausalTransformer"]


class CausalSelfAttention(nn.Module):
    r"""Multi-head self-attention in which position :math:`t` attends to positions :math:`\le t`.

    Args:
        dim: model width (a multiple of ``heads``).
        heads: attention heads.
        dropout: dropout on the attention weights and the output.

    Input and output ``(n, T, dim)``.

    References: Vaswani et al., 2017, arXiv:1706.03762.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads={heads}; got {dim}")
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.dropout = heads, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return F.dropout(self.proj(y.transpose(1, 2).reshape(n, t, d)), p, self.training)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CausalTransformer(nn.Module):
    r"""A GPT-style decoder: token and learned position embeddings, pre-LayerNorm causal blocks.

    Reads tokens :math:`s_0, \dots, s_{T-1}` and returns, at every position
    :math:`t`, ``out_features`` numbers that depend only on :math:`s_{\le t}`.

    Args:
        vocab: number of input tokens.
        length: maximum sequence length :math:`T`.
        out_features: outputs per position.
        dim, heads, layers: width, attention heads and blocks.
        dropout: dropout inside the blocks and on the embeddings.

    Input ``(n, T)`` integer tokens; output ``(n, T, out_features)``.

    References: Radford et al., 2018 (GPT); Vaswani et al., 2017, arXiv:1706.03762.

    Example:
        >>> net = CausalTransformer(vocab=3, length=5, out_features=2, dim=16, heads=2, layers=1)
        >>> net(torch.zeros(4, 5, dtype=torch.long)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        out_features: int,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(length, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.tok(tokens) + self.pos[: tokens.shape[1]])
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln(h))
