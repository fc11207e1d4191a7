"""The vector quantizer: STE, EMA, k-means init, dead-code restart, l2/low-dim codes, DDP sync."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from emojiray.models.quantize import VectorQuantizer, kmeans


def make(dim=8, K=16, **kw) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(dim, codebook_size=K, **{"kmeans_init": False, "dead_code_steps": 0, **kw})


def test_nearest_code_and_shapes():
    vq = make().eval()
    z = torch.randn(2, 8, 4, 4)
    out = vq(z)
    assert out.z_q.shape == z.shape and out.codes.shape == (2, 4, 4) and out.codes.dtype == torch.int64
    flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
    brute = torch.cdist(flat, vq.embed).argmin(1)
    assert torch.equal(out.codes.flatten(), brute)
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, 8), vq.embed[brute], atol=1e-6)


def test_straight_through_gradient_is_identity():
    vq = make().eval()
    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    out = vq(z)
    g = torch.randn_like(out.z_q)
    (out.z_q * g).sum().backward()
    # d z_q / d z = I through the estimator (plus nothing else: the commitment loss is not in this sum)
    assert torch.allclose(z.grad, g)


def test_commitment_loss_gradient_pulls_z_towards_its_code():
    vq = make(beta=0.5).eval()
    z = torch.randn(1, 8, 2, 2, requires_grad=True)
    out = vq(z)
    out.loss.backward()
    q = vq.embed[out.codes.flatten()]
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 8)
    expected = 0.5 * 2 * (flat - q) / flat.numel()
    assert torch.allclose(z.grad.permute(0, 2, 3, 1).reshape(-1, 8), expected, atol=1e-6)


def test_ema_update_moves_codes_to_cluster_means():
    vq = make(K=2, dim=2, ema_decay=0.0, eps=0.0)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    z = torch.tensor([[1.0, 1.0], [3.0, 1.0], [9.0, 9.0], [11.0, 13.0]]).view(1, 2, 2, 2).permute(0, 3, 1, 2)
    vq.train()(z)
    assert torch.allclose(vq.embed, torch.tensor([[2.0, 1.0], [10.0, 11.0]]), atol=1e-5)


def test_ema_decay_blends_old_and_new():
    vq = make(K=2, dim=2, ema_decay=0.5, eps=0.0)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    vq.embed_sum.copy_(vq.embed)  # cluster_size starts at 1
    z = torch.tensor([[2.0, 2.0], [2.0, 2.0]]).view(1, 1, 2, 2).permute(0, 3, 1, 2)
    vq.train()(z)
    # code 0: size 0.5*1 + 0.5*2 = 1.5, sum 0.5*0 + 0.5*(4,4) = (2,2) -> (1.333, 1.333)
    assert torch.allclose(vq.embed[0], torch.tensor([4 / 3, 4 / 3]), atol=1e-5)
    assert torch.allclose(vq.embed[1], torch.tensor([10.0, 10.0]))  # unused: unchanged


def test_kmeans_init_finds_the_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    x = torch.cat([c + torch.randn(200, 2) for c in centres])
    vq = VectorQuantizer(2, codebook_size=4, kmeans_init=True, kmeans_iters=20, dead_code_steps=0)
    assert not bool(vq.initialised)
    vq.train()(x.view(1, 800, 1, 2).permute(0, 3, 1, 2))
    assert bool(vq.initialised)
    # every true centre has a code within 1.0 of it
    assert torch.cdist(centres, vq.embed).min(dim=1).values.max() < 1.0
    first = vq.embed.clone()
    vq.train()(x.view(1, 800, 1, 2).permute(0, 3, 1, 2))  # no second initialisation
    assert torch.allclose(vq.embed, first, atol=0.5)


def test_kmeans_handles_fewer_points_than_codes():
    c = kmeans(torch.randn(5, 3), 16, iters=3)
    assert c.shape == (16, 3) and torch.isfinite(c).all()


def test_dead_codes_restart_from_encoder_outputs():
    vq = make(K=8, dim=4, dead_code_steps=3)
    vq.embed.copy_(torch.cat([torch.zeros(1, 4), 100 + torch.arange(7.0)[:, None].expand(7, 4)]))
    vq.embed_sum.copy_(vq.embed)  # EMA sums match the codes (cluster sizes start at 1)
    z = 0.01 * torch.randn(1, 4, 4, 4)  # every vector maps to code 0
    restarted = [vq.train()(z).restarted for _ in range(3)]
    assert restarted == [0, 0, 7]
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    # the re-seeded codes are encoder outputs of this batch
    for code in vq.embed[1:]:
        assert (flat - code).abs().sum(1).min() < 1e-3
    assert (vq.unused_steps == 0).all()


def test_l2_normalised_and_low_dimensional_codes():
    vq = VectorQuantizer(16, codebook_size=8, lookup_dim=4, l2_normalize=True, kmeans_init=False,
                         dead_code_steps=0)
    z = torch.randn(2, 16, 3, 3)
    out = vq.train()(z)
    assert out.z_q.shape == z.shape
    assert vq.embed.shape == (8, 4)
    assert torch.allclose(vq.codebook().norm(dim=1), torch.ones(8), atol=1e-5)
    assert torch.allclose(vq.embed.norm(dim=1), torch.ones(8), atol=1e-5)  # EMA keeps them on the sphere
    back = vq.embed_codes(out.codes)
    assert back.shape == z.shape


def test_gradient_codebook_without_ema_gets_gradients():
    vq = make(ema=False)
    z = torch.randn(2, 8, 4, 4, requires_grad=True)
    vq.train()(z).loss.backward()
    assert vq.embed.grad is not None and vq.embed.grad.abs().sum() > 0


def test_perplexity_counts_distinct_codes():
    vq = make(K=4, dim=1)
    vq.embed.copy_(torch.arange(4.0)[:, None])
    z = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4)
    assert abs(vq.eval()(z).perplexity.item() - 4.0) < 1e-4
    z = torch.zeros(1, 1, 1, 4)
    assert abs(vq.eval()(z).perplexity.item() - 1.0) < 1e-4


# -- DDP: two gloo processes with different data keep identical codebooks -----------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(1234)  # same initial codebook
        vq = VectorQuantizer(4, codebook_size=32, kmeans_init=True, dead_code_steps=2, ema_decay=0.9)
        gen = torch.Generator().manual_seed(rank)  # different data on each worker
        restarts = 0
        for step in range(6):
            z = torch.randn(2, 4, 4, 4, generator=gen) * (1 + rank) + step
            restarts += vq.train()(z).restarted
        results[rank] = {k: v.clone() for k, v in vq.state_dict().items()} | {"restarts": restarts}
    finally:
        dist.destroy_process_group()


def test_ddp_workers_keep_identical_codebooks():
    world = 2
    manager = mp.get_context("spawn").Manager()  # no fork: a forked copy of a process running Ray breaks its gRPC
    results = manager.dict()
    mp.spawn(_ddp_worker, args=(world, _free_port(), results), nprocs=world, join=True)
    a, b = results[0], results[1]
    assert a["restarts"] == b["restarts"] and a["restarts"] > 0, "restarts happened, on both"
    for key in ("embed", "cluster_size", "embed_sum", "unused_steps", "initialised"):
        assert torch.equal(a[key], b[key]), f"{key} differs between workers"
    # and the data really differed: a single process on rank 0's data alone ends elsewhere
    torch.manual_seed(1234)
    solo = VectorQuantizer(4, codebook_size=32, kmeans_init=True, dead_code_steps=2, ema_decay=0.9)
    gen = torch.Generator().manual_seed(0)
    for step in range(6):
        solo.train()(torch.randn(2, 4, 4, 4, generator=gen) + step)
    assert not torch.allclose(solo.embed, a["embed"])


def test_fused_distance_matches_naive_nearest_code():
    """_nearest's one addmm (||c||^2 - 2 x.c) picks the same codes as the explicit distances,
    chunked or not, and the same numbers as the unfused ``c2 - (2 x) @ c.T``."""
    from emojiray.models.quantize import _nearest

    g = torch.Generator().manual_seed(1)
    x, codes = torch.randn(1000, 16, generator=g), torch.randn(64, 16, generator=g)
    naive = ((x[:, None, :] - codes[None, :, :]) ** 2).sum(-1)  # (N, K) full squared distances
    expected = naive.argmin(1)
    assert torch.equal(_nearest(x, codes), expected)
    assert torch.equal(_nearest(x, codes, chunk=37), expected)  # chunk boundaries change nothing
    c2 = codes.pow(2).sum(1)
    unfused = c2[None, :] - 2.0 * x @ codes.t()
    fused = torch.addmm(c2, x, codes.t(), alpha=-2.0)
    assert torch.allclose(fused, unfused, rtol=0, atol=1e-5)


def test_ema_sums_equal_the_one_hot_formulation():
    """The EMA statistics (bincount counts, index_add_ sums) equal the textbook one-hot ones."""
    vq = make(ema_decay=0.9)
    z = torch.randn(3, 8, 5, 5)
    embed0, size0, sum0 = vq.embed.clone(), vq.cluster_size.clone(), vq.embed_sum.clone()
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
    one_hot = torch.nn.functional.one_hot(out.codes.flatten(), 16).float()  # (N, K)
    assert torch.equal(out.codes.flatten(), torch.cdist(flat, embed0).argmin(1))
    size = 0.9 * size0 + 0.1 * one_hot.sum(0)
    sums = 0.9 * sum0 + 0.1 * one_hot.t() @ flat
    assert torch.allclose(vq.cluster_size, size, atol=1e-5)
    assert torch.allclose(vq.embed_sum, sums, atol=1e-5)
    n = size.sum()
    smoothed = (size + vq.eps) / (n + 16 * vq.eps) * n
    assert torch.allclose(vq.embed, sums / smoothed[:, None], atol=1e-5)
    probs = one_hot.mean(0)
    assert torch.allclose(out.perplexity, torch.exp(-(probs * (probs + 1e-10).log()).sum()), atol=1e-5)


def test_codes_and_statistics_stay_fp32_under_bf16_autocast():
    """Under bf16 autocast (GPU, or a CPU with native bf16) the nearest-code search, the EMA statistics
    and the losses run in fp32: the same codes as without autocast (no projection here, so the lookup
    sees the same features)."""
    import copy

    torch.manual_seed(0)
    q = VectorQuantizer(dim=16, codebook_size=256, kmeans_init=False, dead_code_steps=0)
    z = torch.randn(4, 16, 8, 8)
    q_bf16 = copy.deepcopy(q)
    plain = q(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = q_bf16(z)
    assert torch.equal(plain.codes, mixed.codes)
    assert torch.equal(q.embed, q_bf16.embed) and torch.equal(q.cluster_size, q_bf16.cluster_size)
    assert mixed.loss.dtype == torch.float32 and torch.equal(plain.z_q, mixed.z_q)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(q_bf16.nearest(z), q.nearest(z))


def test_the_model_settings_are_the_quantizers_keyword_arguments():
    # model.* reaches VectorQuantizer under its own names: no renaming on the way in
    import dataclasses
    import inspect

    from emojiray.config import ModelConfig
    from emojiray.models.vqvae import VQ_SETTINGS

    assert set(VQ_SETTINGS) <= set(inspect.signature(VectorQuantizer).parameters)
    assert set(VQ_SETTINGS) <= {f.name for f in dataclasses.fields(ModelConfig)}
