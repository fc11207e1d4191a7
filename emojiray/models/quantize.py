"""Vector quantisation with an EMA codebook (van den Oord et al. 2017; Razavi et al. 2019).

One ``VectorQuantizer`` per level. What it does each training step, in order:

1. optional projection to a low-dimensional lookup space (``codebook_dim`` < ``dim``, 1x1 convs),
   optional l2 normalisation of inputs and codes (cosine-similarity codebooks);
2. on the first training batch, k-means initialisation of the codebook from the encoder
   outputs (computed on rank 0 and broadcast, so every worker starts identical);
3. nearest-code assignment and the straight-through estimator ``z + (q - z).detach()``;
4. commitment loss ``beta * ||z - sg(q)||^2`` (plus the codebook loss ``||sg(z) - q||^2`` when
   the codebook is learned by gradient instead of EMA);
5. EMA update of code counts and sums (decay ``decay``, Laplace smoothing ``eps``);
6. dead-code restart: a code unused for ``dead_code_steps`` consecutive steps is re-seeded from a
   random current encoder output.

Under ``torch.distributed`` every statistic (counts, sums, usage) is all-reduced and every
random choice (k-means, restarts) is made on rank 0 and broadcast, so all workers keep
bit-identical codebooks without relying on DDP buffer broadcasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_(t: torch.Tensor) -> torch.Tensor:
    if _dist_on():
        dist.all_reduce(t)
    return t


def _broadcast_(t: torch.Tensor) -> torch.Tensor:
    if _dist_on():
        dist.broadcast(t, src=0)
    return t


def kmeans(x: torch.Tensor, k: int, iters: int = 10, l2: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means on x (N, D) -> centroids (k, D): k-means++ seeding, then Lloyd iterations.

    Empty clusters keep their centre. With fewer points than codes, points are reused.
    """
    n = x.shape[0]
    centres = x.new_empty(k, x.shape[1])
    first = torch.randint(0, n, (1,), generator=generator).item()
    centres[0] = x[first]
    d2 = (x - centres[0]).pow(2).sum(1)  # squared distance to the nearest chosen centre
    for i in range(1, k):
        # D^2 sampling: far points are likelier seeds (uniform once every point is a centre)
        weights = d2.clamp(min=0).cpu().double()
        pick = torch.multinomial(weights if weights.sum() > 0 else torch.ones(n, dtype=torch.double), 1,
                                 generator=generator).item()
        centres[i] = x[pick]
        d2 = torch.minimum(d2, (x - centres[i]).pow(2).sum(1))
    for _ in range(iters):
        assign = _nearest(x, centres)  # (N,)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        if l2:
            centres = F.normalize(centres, dim=-1)
    return centres


def _nearest(x: torch.Tensor, codes: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Index of the nearest code (squared Euclidean) for each row of x (N, D); chunked.

    ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, and ||x||^2 does not change the argmin, so the
    distances are one fused ``addmm``: ||c||^2 - 2 x.c (no (N, D) or (N, K) temporaries besides
    the result; the same numbers as ``c2 - (2 x) @ c.T``, since scaling by 2 is exact).
    """
    c2 = codes.pow(2).sum(1)  # (K,)
    ct = codes.t()
    out = [torch.addmm(c2, part, ct, alpha=-2.0).argmin(1) for part in x.split(chunk)]  # (n, K) -> (n,)
    return out[0] if len(out) == 1 else torch.cat(out)


@dataclass
class QuantizerOutput:
    z_q: torch.Tensor  # (B, C, H, W) quantised features (straight-through), same shape as input
    codes: torch.Tensor  # (B, H, W) int64 code indices
    loss: torch.Tensor  # scalar: commitment (+ codebook) loss
    perplexity: torch.Tensor  # scalar: exp(entropy) of this batch's code distribution
    restarted: int  # codes re-seeded this step


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        dim: int,
        codebook_size: int = 512,
        codebook_dim: int = 0,  # 0 = dim; smaller = low-dimensional lookup with projections
        beta: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        ema: bool = True,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_code_steps: int = 100,
        l2_normalize: bool = False,
    ):
        super().__init__()
        code_dim = codebook_dim or dim
        self.K, self.D = codebook_size, code_dim
        self.beta, self.decay, self.eps = beta, decay, eps
        self.ema, self.kmeans_iters, self.dead_code_steps = ema, kmeans_iters, dead_code_steps
        self.l2 = l2_normalize
        # low-dimensional codes: project in and out around the lookup
        self.project_in = nn.Conv2d(dim, code_dim, 1) if code_dim != dim else nn.Identity()
        self.project_out = nn.Conv2d(code_dim, dim, 1) if code_dim != dim else nn.Identity()

        embed = torch.randn(codebook_size, code_dim)
        if l2_normalize:
            embed = F.normalize(embed, dim=-1)
        if ema:
            self.register_buffer("embed", embed)
        else:
            self.embed = nn.Parameter(embed)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # EMA of counts (K,)
        self.register_buffer("embed_sum", embed.clone())  # EMA of sums (K, D)
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(not kmeans_init))

    # -- lookup ---------------------------------------------------------------------------------

    def codebook(self) -> torch.Tensor:
        return F.normalize(self.embed, dim=-1) if self.l2 else self.embed

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, C, H, W) features as the decoder sees them."""
        q = F.embedding(codes, self.codebook()).permute(0, 3, 1, 2)  # (B, D, H, W)
        return self.project_out(q)

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features -> (B, H, W) nearest code indices (no statistics, no updates)."""
        z = self.project_in(z)
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        if self.l2:
            flat = F.normalize(flat, dim=-1)
        with torch.autocast(z.device.type, enabled=False):  # fp32 distances under bf16 autocast too
            return _nearest(flat, self.codebook().float()).view(b, h, w)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z = self.project_in(z)
        with torch.autocast(z.device.type, enabled=False):  # distances, statistics and losses in fp32
            out = self._quantize(z)
        out.z_q = self.project_out(out.z_q)  # back under the caller's precision
        return out

    def _quantize(self, z: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()  # (B*H*W, D), fp32 for distances
        if self.l2:
            flat = F.normalize(flat, dim=-1)

        if self.training and not bool(self.initialised):
            self._kmeans_init(flat.detach())

        codebook = self.codebook().float()
        codes = _nearest(flat.detach(), codebook)  # (B*H*W,)
        q = codebook[codes]  # (B*H*W, D)

        # losses in fp32
        commit = F.mse_loss(flat, q.detach())
        loss = self.beta * commit
        if not self.ema:
            loss = loss + F.mse_loss(q, flat.detach())

        counts = torch.bincount(codes, minlength=self.K).float()  # (K,) this worker's batch
        restarted = 0
        if self.training:
            counts = _all_reduce_(counts)
            if self.ema:
                self._ema_update(flat.detach(), codes, counts)
            restarted = self._restart_dead(flat.detach(), counts)

        probs = counts / counts.sum().clamp(min=1)
        perplexity = torch.exp(-(probs * (probs + 1e-10).log()).sum())

        q = flat + (q - flat).detach()  # straight-through estimator
        z_q = q.view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        return QuantizerOutput(z_q, codes.view(b, h, w), loss, perplexity, restarted)

    # -- codebook maintenance (no gradients) -------------------------------------------------------

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        centres = kmeans(flat, self.K, self.kmeans_iters, self.l2)
        _broadcast_(centres)  # rank 0's centres for everybody
        self.embed.data.copy_(centres)
        self.embed_sum.copy_(centres)
        self.cluster_size.fill_(1.0)
        self.unused_steps.zero_()
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros(self.K, self.D, device=flat.device).index_add_(0, codes, flat)  # (K, D)
        _all_reduce_(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.K * self.eps) * n  # Laplace smoothing
        embed = self.embed_sum / smoothed[:, None]
        self.embed.data.copy_(F.normalize(embed, dim=-1) if self.l2 else embed)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, counts: torch.Tensor) -> int:
        if self.dead_code_steps <= 0:
            return 0
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_steps >= self.dead_code_steps
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        # rank 0 draws the replacements from its encoder outputs; everybody takes them
        pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
        fresh = _broadcast_(flat[pick].contiguous())
        self.embed.data[dead] = fresh
        self.embed_sum[dead] = fresh
        self.cluster_size[dead] = 1.0
        self.unused_steps[dead] = 0
        return n_dead
