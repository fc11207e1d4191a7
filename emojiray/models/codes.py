"""Code grids as token sequences, and token sampling shared by the priors (pure PyTorch).

A VQ-VAE-2 image is a dict of code grids, e.g. {"top": (B, 8, 8), "bottom": (B, 16, 16)}. The
transformer priors read them as one sequence in raster order, top level first:

    tokens (B, N) = [top codes (h_t * w_t) | bottom codes (h_b * w_b)],  N = 64 + 256 at 64 px

with one shared vocabulary in which each level has its own id range (top: [0, K_t), bottom:
[K_t, K_t + K_b)), so a position can only ever produce a code of its own level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CodeLayout:
    levels: tuple[str, ...]  # generation order, e.g. ("top", "bottom")
    grids: tuple[tuple[int, int], ...]  # (h, w) per level
    sizes: tuple[int, ...]  # codebook size K per level

    @classmethod
    def from_dicts(cls, levels, grids: dict, sizes: dict) -> "CodeLayout":
        return cls(tuple(levels), tuple(tuple(grids[lv]) for lv in levels), tuple(int(sizes[lv]) for lv in levels))

    @property
    def vocab_size(self) -> int:
        return sum(self.sizes)

    @property
    def seq_len(self) -> int:
        return sum(h * w for h, w in self.grids)

    @property
    def offsets(self) -> tuple[int, ...]:
        out, acc = [], 0
        for k in self.sizes:
            out.append(acc)
            acc += k
        return tuple(out)

    def spans(self) -> list[tuple[int, int]]:
        """[start, end) of each level in the token sequence."""
        out, pos = [], 0
        for h, w in self.grids:
            out.append((pos, pos + h * w))
            pos += h * w
        return out

    def flatten(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        """{level: (B, h, w)} -> (B, N) tokens in the shared vocabulary."""
        parts = [codes[lv].flatten(1) + off for lv, off in zip(self.levels, self.offsets)]
        return torch.cat(parts, dim=1)

    def unflatten(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, N) tokens -> {level: (B, h, w)} code indices."""
        out = {}
        for lv, (s, e), (h, w), off in zip(self.levels, self.spans(), self.grids, self.offsets):
            out[lv] = (tokens[:, s:e] - off).view(-1, h, w)
        return out

    def allowed(self, device=None) -> torch.Tensor:
        """(N, V) bool: which vocabulary ids each position may produce."""
        mask = torch.zeros(self.seq_len, self.vocab_size, dtype=torch.bool, device=device)
        for (s, e), off, k in zip(self.spans(), self.offsets, self.sizes):
            mask[s:e, off:off + k] = True
        return mask


def guided(logits_cond: torch.Tensor, logits_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: l_u + s (l_c - l_u). s = 0 is the unconditional model, s = 1 the
    conditional one, s > 1 pushes samples towards the condition."""
    return logits_uncond + scale * (logits_cond - logits_uncond)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the top-k and/or the smallest set with cumulative probability >= top_p (nucleus)."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        cum = probs.cumsum(-1)
        drop = cum - probs > top_p  # tokens after the nucleus is complete
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def sample_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(..., V) logits -> (...) sampled ids; temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = F.softmax(logits, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
