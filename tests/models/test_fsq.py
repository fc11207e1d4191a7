"""Finite scalar quantisation and the rotation trick: shapes, indices, reach, gradients, checkpoints."""

from __future__ import annotations

import itertools

import pytest
import torch

from emojiray.config import Config, ModelConfig
from emojiray.errors import EmojirayError
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt
from emojiray.models.quantize import FSQuantizer, VectorQuantizer, rotate_to


def make(levels=(8, 5, 3), dim=6) -> FSQuantizer:
    torch.manual_seed(0)
    return FSQuantizer(dim, levels)


def test_shapes_codebook_size_and_no_loss():
    fsq = make()
    z = torch.randn(2, 6, 4, 5)
    out = fsq(z)
    assert fsq.K == 8 * 5 * 3
    assert out.z_q.shape == z.shape and out.codes.shape == (2, 4, 5) and out.codes.dtype == torch.int64
    assert float(out.loss) == 0.0 and out.restarted == 0
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < fsq.K
    assert torch.equal(fsq.nearest(z), out.codes)


@pytest.mark.parametrize("levels", [(8, 5, 3), (2, 2), (7,), (4, 6, 5, 5)])
def test_every_code_is_reachable_and_indices_round_trip(levels):
    fsq = make(levels, dim=len(levels))
    # every value of every channel: the integers of each channel pushed through the inverse of its bound
    grids = [torch.arange(n, dtype=torch.float32) - n // 2 for n in levels]
    ints = torch.tensor(list(itertools.product(*grids))).T  # (d, K)
    target = (ints + fsq._offset[:, None]) / fsq._half[:, None]
    pre = torch.atanh(target) - fsq._shift[:, None]  # channel values that round to each integer tuple
    pre = pre.T.reshape(1, -1, 1, len(levels)).permute(0, 3, 1, 2)  # (1, d, K, 1)
    codes = fsq._indices(fsq._round(pre))
    assert sorted(codes.flatten().tolist()) == list(range(fsq.K))  # every code, each once
    values = fsq.codes_to_values(codes)
    assert torch.allclose(values * fsq._width.view(1, -1, 1, 1), fsq._round(pre), atol=1e-5)  # index -> values
    assert float(values.abs().max()) <= 1.0


def test_decoding_indices_equals_the_quantised_forward():
    fsq = make().eval()
    z = 3 * torch.randn(4, 6, 3, 3)
    out = fsq(z)
    assert torch.allclose(fsq.embed_codes(out.codes), out.z_q, atol=1e-6)


def test_straight_through_gradient_of_the_rounding():
    fsq = make(dim=3)
    with torch.no_grad():  # identity projections: the gradient of the bound itself is what remains
        fsq.project_in.weight.copy_(torch.eye(3).view(3, 3, 1, 1)), fsq.project_in.bias.zero_()
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    ints = fsq._round(fsq.project_in(z))
    ints.sum().backward()
    pre = z.detach() + fsq._shift.view(1, -1, 1, 1)
    expected = (1 - torch.tanh(pre) ** 2) * fsq._half.view(1, -1, 1, 1)  # d tanh-bound / dz, rounding skipped
    assert torch.allclose(z.grad, expected, atol=1e-5)
    assert torch.equal(ints, ints.round())


def test_bad_levels_are_refused():
    with pytest.raises(ValueError):
        FSQuantizer(4, [1, 5])
    with pytest.raises(EmojirayError, match="quantizer"):
        build_vqvae(ModelConfig(quantizer="lfq"))
    with pytest.raises(EmojirayError, match="fsq_levels"):
        build_vqvae(ModelConfig(quantizer="fsq", fsq_levels=[[8, 1], [5, 5]]))
    with pytest.raises(EmojirayError, match="fsq_levels needs 2"):
        build_vqvae(ModelConfig(quantizer="fsq", fsq_levels=[[8, 5]]))


@pytest.mark.parametrize("arch", ["vqvae", "vqvae2"])
def test_fsq_tokenizer_round_trips_through_a_checkpoint(tmp_path, arch):
    cfg = Config(model=ModelConfig(arch=arch, channels=32, res_channels=16, code_dim=[8, 8], quantizer="fsq",
                                   fsq_levels=[[5, 4, 3], [3, 3]]))
    torch.manual_seed(0)
    model = build_vqvae(cfg.model)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    out.recon.pow(2).mean().backward()  # gradients reach the encoder through the rounding
    assert model.quantizers["bottom"].project_in.weight.grad.abs().sum() > 0
    assert {lv: q.K for lv, q in model.quantizers.items()} == ({"bottom": 60, "top": 9} if arch == "vqvae2"
                                                               else {"bottom": 60})
    d = ckpt.save(tmp_path / "c", model, "vqvae", cfg.to_dict(), step=1, epoch=1)
    loaded, lcfg, _ = ckpt.load_vqvae(str(d))
    assert lcfg.model.quantizer == "fsq" and isinstance(loaded.quantizers["bottom"], FSQuantizer)
    model.eval(), loaded.eval()
    codes = model.encode(x)
    assert all(torch.equal(codes[lv], c) for lv, c in loaded.encode(x).items())
    assert torch.allclose(loaded.decode_codes(codes), model.decode_codes(codes), atol=1e-6)


def test_rotation_trick_lands_on_the_code_and_rotates_the_gradient():
    torch.manual_seed(0)
    z = torch.randn(5, 4, requires_grad=True)
    q = torch.randn(5, 4)
    out = rotate_to(z, q)
    assert torch.allclose(out, q, atol=1e-5)
    g = torch.randn(5, 4)
    (out * g).sum().backward()
    # the gradient is a rotation of g scaled by |q|/|z|: its norm scales, and it is not g itself
    scale = q.norm(dim=1) / z.detach().norm(dim=1)
    assert torch.allclose(z.grad.norm(dim=1), g.norm(dim=1) * scale, atol=1e-5)
    assert not torch.allclose(z.grad, g)
    # z already on its code: the identity
    z2 = q.clone().requires_grad_(True)
    (rotate_to(z2, q) * g).sum().backward()
    assert torch.allclose(z2.grad, g, atol=1e-5)


def test_vector_quantizer_with_the_rotation_trick():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, codebook_size=16, kmeans_init=False, dead_code_steps=0, rotation_trick=True).eval()
    z = torch.randn(2, 8, 3, 3, requires_grad=True)
    out = vq(z)
    flat = out.z_q.permute(0, 2, 3, 1).reshape(-1, 8)
    assert torch.allclose(flat, vq.embed[out.codes.flatten()], atol=1e-5)
    out.z_q.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
