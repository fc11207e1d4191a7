"""The quantizers of the tokenizer's levels: vector quantisation with an EMA codebook (van den Oord
et al. 2017; Razavi et al. 2019) and finite scalar quantisation (Mentzer et al. 2023).

Both map (B, C, H, W) features to (B, H, W) code indices and back with the same interface
(``K``, ``forward``, ``nearest``, ``embed_codes``), so a model takes either at any level.

``VectorQuantizer``. What it does each training step, in order:

1. optional projection to a low-dimensional lookup space (``lookup_dim`` < ``dim``, 1x1 convs),
   optional l2 normalisation of inputs and codes (cosine-similarity codebooks);
2. on the first training batch, k-means initialisation of the codebook from the encoder
   outputs (computed on rank 0 and broadcast, so every worker starts identical);
3. nearest-code assignment and the straight-through estimator ``z + (q - z).detach()``, or with
   ``rotation_trick`` the rotation trick (Fifty et al. 2024): the gradient reaching ``z`` is
   rotated and scaled as ``z`` would have to be to land on its code;
4. commitment loss ``beta * ||z - sg(q)||^2`` (plus the codebook loss ``||sg(z) - q||^2`` when
   the codebook is learned by gradient instead of EMA);
5. EMA update of code counts and sums (decay ``decay``, Laplace smoothing ``eps``);
6. dead-code restart: a code unused for ``dead_code_steps`` consecutive steps is re-seeded from a
   random current encoder output.

``FSQuantizer`` has no codebook: each of a few channels is bounded and rounded to one of
``levels[i]`` values, and a code is the tuple of those values (K = the product of the levels).
Every code is reachable and nothing can collapse, so there is no loss, no initialisation and no
restart.

Under ``torch.distributed`` every VQ statistic (counts, sums, usage) is all-reduced and every
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


def rotate_to(z: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rows of ``z`` (N, D) moved onto ``q`` (N, D) by a rotation and a scaling treated as constants.

    The forward value is ``q``; the gradient reaching ``z`` is the output's gradient rotated by
    the same rotation (the one in the plane of z and q taking z's direction to q's) and scaled
    by ||q|| / ||z||. It is the Householder form I - 2 r r^T + 2 q^ z^T with r the unit bisector
    of z^ and q^, applied without forming a (D, D) matrix.
    """
    z_norm = z.norm(dim=1, keepdim=True).clamp(min=eps)
    q_norm = q.norm(dim=1, keepdim=True)
    u = (z / z_norm).detach()
    v = (q / q_norm.clamp(min=eps)).detach()
    r = F.normalize(u + v, dim=1, eps=eps)
    rotated = z - 2 * (z * r).sum(1, keepdim=True) * r + 2 * (z * u).sum(1, keepdim=True) * v
    return rotated * (q_norm / z_norm).detach()


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
        lookup_dim: int = 0,  # 0 = dim; smaller = low-dimensional lookup with projections
        beta: float = 0.25,
        ema_decay: float = 0.99,
        eps: float = 1e-5,
        ema: bool = True,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_code_steps: int = 100,
        l2_normalize: bool = False,
        rotation_trick: bool = False,
    ):
        super().__init__()
        self.rotation_trick = rotation_trick
        code_dim = lookup_dim or dim
        self.K, self.D = codebook_size, code_dim
        self.beta, self.decay, self.eps = beta, ema_decay, eps
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

        q = rotate_to(flat, q) if self.rotation_trick else flat + (q - flat).detach()  # straight through
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


class FSQuantizer(nn.Module):
    """Finite scalar quantisation: ``levels`` values per channel, no codebook to learn.

    ``dim`` features are projected (1x1 conv) to ``len(levels)`` channels; channel i is squashed by
    tanh into an interval holding ``levels[i]`` integers, rounded (straight-through gradient) and
    scaled back into [-1, 1]; a 1x1 conv returns to ``dim``. The code index is the mixed-radix
    number whose digit i is channel i's integer (0 .. levels[i] - 1), so K = prod(levels).
    """

    def __init__(self, dim: int, levels: list[int] | tuple[int, ...] = (8, 5, 5, 5), eps: float = 1e-3):
        super().__init__()
        levels = [int(n) for n in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ levels must be integers >= 2, got {levels}")
        self.levels, self.d = levels, len(levels)
        self.K = int(torch.tensor(levels).prod())
        self.project_in = nn.Conv2d(dim, self.d, 1)
        self.project_out = nn.Conv2d(self.d, dim, 1)
        n = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("_half", (n - 1) * (1 + eps) / 2, persistent=False)  # tanh's reach
        self.register_buffer("_offset", (1 - n % 2) / 2, persistent=False)  # 0.5 for an even count
        self.register_buffer("_shift", torch.atanh(self._offset / self._half), persistent=False)
        self.register_buffer("_width", torch.div(n, 2, rounding_mode="floor"), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_basis", basis, persistent=False)

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1)

    def _round(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d, H, W) -> integers in [-width, levels - 1 - width] per channel (straight-through)."""
        bounded = torch.tanh(z + self._view(self._shift)) * self._view(self._half) - self._view(self._offset)
        return bounded + (bounded.round() - bounded).detach()

    def _indices(self, ints: torch.Tensor) -> torch.Tensor:
        digits = (ints.detach() + self._view(self._width)).round().long()  # (B, d, H, W) in 0..L-1
        return (digits * self._view(self._basis)).sum(1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z = self.project_in(z)
        with torch.autocast(z.device.type, enabled=False):  # rounding and indices in fp32
            ints = self._round(z.float())
            codes = self._indices(ints)
            counts = torch.bincount(codes.flatten(), minlength=self.K).float()
            counts = _all_reduce_(counts) if self.training else counts
            probs = counts / counts.sum().clamp(min=1)
            perplexity = torch.exp(-(probs * (probs + 1e-10).log()).sum())
            z_q = (ints / self._view(self._width)).to(z.dtype)
        return QuantizerOutput(self.project_out(z_q), codes, z.new_zeros((), dtype=torch.float32), perplexity, 0)

    def codes_to_values(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, d, H, W) quantised values in [-1, 1]."""
        n = torch.tensor(self.levels, device=codes.device)
        digits = torch.div(codes.unsqueeze(1), self._view(self._basis), rounding_mode="floor") % n.view(1, -1, 1, 1)
        return (digits - self._view(self._width)) / self._view(self._width)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, C, H, W) features as the decoder sees them."""
        values = self.codes_to_values(codes)
        return self.project_out(values.to(self.project_out.weight.dtype))

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features -> (B, H, W) code indices."""
        z = self.project_in(z)
        with torch.autocast(z.device.type, enabled=False):
            return self._indices(self._round(z.float()))
