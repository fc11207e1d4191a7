"""VQ-VAE and VQ-VAE-2: shapes at 32 and 64 px, encode/decode consistency, config errors, the
reconstruction loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emojiray.config import ModelConfig
from emojiray.errors import EmojirayError
from emojiray.models import VQVAE, VQVAE2, build_vqvae
from emojiray.models.vqvae import reconstruction_loss

SMALL_RES_BLOCKS = ModelConfig().res_blocks
SMALL = dict(channels=32, res_channels=16, codebook_size=[32, 16], code_dim=[8, 8], kmeans_init=False)


@pytest.mark.parametrize("size", [32, 64])
def test_vqvae2_shapes(size):
    m = build_vqvae(ModelConfig(arch="vqvae2", **SMALL), size)
    assert isinstance(m, VQVAE2) and m.levels == ("top", "bottom")
    x = torch.randn(2, 3, size, size)
    out = m.train()(x)
    assert out.recon.shape == x.shape
    assert out.codes["bottom"].shape == (2, size // 4, size // 4)
    assert out.codes["top"].shape == (2, size // 8, size // 8)
    assert m.grid_sizes(size) == {"top": (size // 8, size // 8), "bottom": (size // 4, size // 4)}
    assert out.vq_loss.ndim == 0 and set(out.perplexity) == {"top", "bottom"}


@pytest.mark.parametrize("size", [32, 64])
def test_flat_vqvae_shapes(size):
    m = build_vqvae(ModelConfig(arch="vqvae", **SMALL), size)
    assert isinstance(m, VQVAE) and m.levels == ("bottom",)
    out = m.train()(torch.randn(2, 3, size, size))
    assert out.recon.shape == (2, 3, size, size) and out.codes["bottom"].shape == (2, size // 4, size // 4)


def test_downsampling_per_level_is_configurable():
    m = build_vqvae(ModelConfig(arch="vqvae2", downsample=[8, 2], **SMALL), 64)
    out = m.eval()(torch.randn(1, 3, 64, 64))
    assert out.codes["bottom"].shape == (1, 8, 8) and out.codes["top"].shape == (1, 4, 4)


@pytest.mark.parametrize("arch", ["vqvae", "vqvae2"])
def test_decode_codes_matches_forward_in_eval(arch):
    torch.manual_seed(0)
    m = build_vqvae(ModelConfig(arch=arch, **SMALL), 32).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = m(x)
        codes = m.encode(x)
        assert all(torch.equal(codes[k], out.codes[k]) for k in codes)
        assert torch.allclose(m.decode_codes(codes), out.recon, atol=1e-5)


def test_gradients_reach_every_parameter():
    m = build_vqvae(ModelConfig(arch="vqvae2", **SMALL), 32).train()
    x = torch.randn(2, 3, 32, 32)
    out = m(x)
    ((out.recon - x).pow(2).mean() + out.vq_loss).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


@pytest.mark.parametrize("arch", ["vqvae", "vqvae2"])
def test_decoder_up_blocks_add_capacity_at_the_upsampled_resolutions(arch):
    plain = build_vqvae(ModelConfig(arch=arch, **SMALL), 32)
    m = build_vqvae(ModelConfig(arch=arch, up_blocks=2, **SMALL), 32).train()
    x = torch.randn(2, 3, 32, 32)
    out = m(x)
    assert out.recon.shape == x.shape
    # two residual blocks after each of the decoder's two upsamplings (16 and 32 px), and a last 3x3 conv
    convs = [mod for mod in m.dec.net if isinstance(mod, torch.nn.Conv2d)]
    assert convs[-1].kernel_size == (3, 3) and convs[-1].out_channels == 3
    blocks = [mod for mod in m.dec.net if type(mod).__name__ == "ResBlock"]
    assert len(blocks) == SMALL_RES_BLOCKS + 4
    assert sum(p.numel() for p in m.parameters()) > sum(p.numel() for p in plain.parameters())
    ((out.recon - x).pow(2).mean() + out.vq_loss).backward()
    assert all(p.grad is not None for p in m.dec.parameters())
    # up_blocks = 0 keeps the paper's decoder (its parameter names), so that older checkpoints still load
    res = [f"{i}.block.{j}.{w}" for i in (1, 2) for j in (1, 3) for w in ("weight", "bias")]
    paper = ["0.weight", "0.bias", *res, "4.weight", "4.bias", "6.weight", "6.bias"]
    assert [k for k in plain.dec.net.state_dict()] == paper


def test_eval_mode_leaves_codebooks_alone():
    m = build_vqvae(ModelConfig(arch="vqvae2", **SMALL), 32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m.eval()(torch.randn(4, 3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("cfg, size, message", [
    (ModelConfig(arch="vqgan"), 64, "unknown model.arch"),
    (ModelConfig(downsample=[3, 2]), 64, "power of two"),
    (ModelConfig(codebook_size=[512]), 64, "needs 2 values"),
    (ModelConfig(downsample=[4, 2]), 36, "not divisible"),
])
def test_config_errors(cfg, size, message):
    with pytest.raises(EmojirayError, match=message):
        build_vqvae(cfg, size)


@pytest.mark.parametrize("arch", ["vqvae", "vqvae2"])
def test_continuous_latents_requantise_to_the_encoded_codes(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, channels=16, res_blocks=1, res_channels=8, codebook_size=[32, 16], code_dim=[8, 8],
                      lookup_dim=4)
    model = build_vqvae(cfg, 32)
    model.train()(torch.randn(8, 3, 32, 32))  # k-means init
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        z = model.encode_latents(x)
        codes = model.encode(x)
        again = model.quantize_latents(z)
    grids = model.grid_sizes(32)
    for lv in model.levels:
        assert z[lv].shape[-2:] == grids[lv] and z[lv].dtype == torch.float32
        assert torch.equal(again[lv], codes[lv]), f"{lv}: latents re-quantise to the codes encode() gives"
    # an edited latent moves to other codes
    moved = model.quantize_latents({lv: z[lv] + 5 * torch.randn_like(z[lv]) for lv in model.levels})
    assert any(not torch.equal(moved[lv], codes[lv]) for lv in model.levels)


def test_reconstruction_loss_is_the_pixel_loss_plus_the_edge_term():
    torch.manual_seed(0)
    x, recon = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(reconstruction_loss(recon, x), F.mse_loss(recon, x))
    assert torch.allclose(reconstruction_loss(recon, x, "l1"), F.l1_loss(recon, x))
    edges = (recon.diff(dim=-1) - x.diff(dim=-1)).abs().mean() + (recon.diff(dim=-2) - x.diff(dim=-2)).abs().mean()
    assert torch.allclose(reconstruction_loss(recon, x, "l1", 0.5), F.l1_loss(recon, x) + 0.5 * edges)
    with pytest.raises(ValueError, match="unknown reconstruction loss 'l2'"):
        reconstruction_loss(recon, x, "l2")


def test_the_edge_term_charges_a_blurred_edge_and_not_a_uniform_offset():
    x = -torch.ones(1, 3, 8, 8)
    x[..., 4:] = 1.0  # a sharp vertical edge
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    offset = x + 0.1
    edge = lambda r: (reconstruction_loss(r, x, "l1", 1.0) - reconstruction_loss(r, x, "l1")).item()  # noqa: E731
    assert edge(offset) == pytest.approx(0.0, abs=1e-7)  # the same edges, shifted in brightness
    assert edge(blurred) > 0.05
    # the gradient reaches the reconstruction, and moves a blurred edge towards the sharp one
    r = blurred.clone().requires_grad_(True)
    reconstruction_loss(r, x, "l1", 1.0).backward()
    assert r.grad[..., 3].sum() > 0 and r.grad[..., 4].sum() < 0  # darker left of the edge, brighter right
