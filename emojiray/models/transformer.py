"""GPT-style autoregressive prior over code sequences, with a KV cache for sampling.

Sequence (see :class:`~emojiray.models.codes.CodeLayout`): position 0 holds the condition token
(a class embedding; the extra class ``n_classes`` is "no condition", used for classifier-free
guidance), positions 1..N-1 hold tokens 0..N-2; the output at position i predicts token i.

    tokens (B, N) ─ shift right, prepend condition ─► (B, N, dim) + positions
      └─ L × [x + attn(ln(x)) (causal) ; x + mlp(ln(x))] ─► ln ─► head ─► logits (B, N, V)

Logits of ids that belong to another level are set to -inf, so position i only predicts codes
of its own level. Sampling feeds one token at a time and reuses cached keys/values of earlier
positions: N small forward passes instead of N full ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emojiray.config import TransformerConfig
from emojiray.models.codes import CodeLayout, guided, sample_logits
from emojiray.models.prior import PriorKind, sampling_kwargs, token_loss


class KVCache:
    """Per-layer key/value buffers (B, heads, N, head_dim), filled left to right."""

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, heads, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.length = 0


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        assert dim % heads == 0, "dim must be divisible by heads"
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, causal: bool, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh)
        if cache is not None:  # append this step's keys/values, attend over everything so far
            start = cache.length
            cache.k[layer][:, :, start:start + T] = k
            cache.v[layer][:, :, start:start + T] = v
            k, v = cache.k[layer][:, :, :start + T], cache.v[layer][:, :, :start + T]
            causal = causal and T > 1  # one new query sees all cached keys
            if causal and start > 0:
                raise ValueError("a multi-token step after the prefix is not supported")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, mlp_ratio: int = 4):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x, causal: bool, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln1(x), causal, cache, layer)
        return x + self.mlp(self.ln2(x))


class ARTransformer(nn.Module):
    """Autoregressive (causal) transformer prior with optional class conditioning."""

    def __init__(self, layout: CodeLayout, n_classes: int = 0, dim: int = 256, layers: int = 8,
                 heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.layout, self.n_classes, self.dim, self.heads = layout, n_classes, dim, heads
        self.tok_emb = nn.Embedding(layout.vocab_size, dim)
        self.cls_emb = nn.Embedding(n_classes + 1, dim)  # index n_classes = unconditional
        self.pos_emb = nn.Parameter(torch.zeros(layout.seq_len, dim))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, layout.vocab_size)
        self.register_buffer("allowed", layout.allowed(), persistent=False)  # (N, V)

    def null_class(self, batch: int, device) -> torch.Tensor:
        return torch.full((batch,), self.n_classes, dtype=torch.long, device=device)

    def _embed(self, prev_tokens: torch.Tensor, cond: torch.Tensor, start: int) -> torch.Tensor:
        """Inputs for positions start..start+T-1; position 0 is the condition token."""
        parts = []
        if start == 0:
            parts.append(self.cls_emb(cond)[:, None])  # (B, 1, dim)
            prev_tokens = prev_tokens[:, : max(0, prev_tokens.shape[1])]
        if prev_tokens.shape[1]:
            parts.append(self.tok_emb(prev_tokens))
        x = torch.cat(parts, dim=1)
        return self.drop(x + self.pos_emb[start:start + x.shape[1]])

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) tokens -> (B, N, V) logits; logits[:, i] predicts tokens[:, i] from tokens[:, :i]."""
        B = tokens.shape[0]
        cond = self.null_class(B, tokens.device) if cond is None else cond
        x = self._embed(tokens[:, :-1], cond, 0)
        for blk in self.blocks:
            x = blk(x, causal=True)
        logits = self.head(self.ln_f(x))
        return logits.masked_fill(~self.allowed[: logits.shape[1]], float("-inf"))

    @torch.no_grad()
    def generate(self, n: int, cond: torch.Tensor | None = None, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, guidance: float = 1.0, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Sample (n, N) tokens. ``cond`` (n,) class ids or None; guidance != 1 needs a condition."""
        device = self.pos_emb.device
        N = self.layout.seq_len
        cond = self.null_class(n, device) if cond is None else cond.to(device)
        guide = guidance != 1.0 and bool((cond != self.n_classes).any())
        # with guidance, run the conditional and the unconditional halves as one batch
        batch_cond = torch.cat([cond, self.null_class(n, device)]) if guide else cond
        B = batch_cond.shape[0]
        tokens = torch.zeros(B, 0, dtype=torch.long, device=device)
        cache = KVCache(len(self.blocks), B, self.heads, N, self.dim // self.heads, device,
                        self.pos_emb.dtype) if use_cache else None
        for i in range(N):
            if cache is not None:
                x = self._embed(tokens[:, -1:] if i > 0 else tokens, batch_cond, i)
                for layer, blk in enumerate(self.blocks):
                    x = blk(x, causal=True, cache=cache, layer=layer)
                cache.length += x.shape[1]
                h = x[:, -1]
            else:
                x = self._embed(tokens, batch_cond, 0)
                for blk in self.blocks:
                    x = blk(x, causal=True)
                h = x[:, -1]
            logits = self.head(self.ln_f(h)).float()  # (B, V)
            logits = logits.masked_fill(~self.allowed[i], float("-inf"))
            if guide:
                logits = guided(logits[:n], logits[n:], guidance)
                logits = logits.masked_fill(~self.allowed[i], float("-inf"))
            nxt = sample_logits(logits, temperature, top_k, top_p, generator)  # (n,)
            if guide:
                nxt = torch.cat([nxt, nxt])  # both halves continue from the same token
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        return tokens[:n]


# -- the prior kind "transformer" ------------------------------------------------------------------


def _build(cfg, layout: CodeLayout, n_classes: int) -> ARTransformer:
    return ARTransformer(layout, n_classes, **vars(cfg.transformer))  # prior.transformer: dim, layers, heads, dropout


def _loss(model, layout: CodeLayout, codes, cond, generator=None, smoothing: float = 0.0):
    tokens = layout.flatten(codes)
    return token_loss(model(tokens, cond), tokens, smoothing)


def _sample(model, layout: CodeLayout, n: int, cond, cfg, generator=None):
    return layout.unflatten(model.generate(n, cond, **sampling_kwargs(cfg, generator)))


PRIOR = PriorKind(build=_build, loss=_loss, sample=_sample, settings=TransformerConfig)
