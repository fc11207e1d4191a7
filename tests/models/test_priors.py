"""Priors over codes: causality, KV cache, MaskGIT schedule and decoding, guidance, layout."""

from __future__ import annotations

import math

import pytest
import torch

from emojiray.models.codes import CodeLayout, filter_logits, guided, sample_logits
from emojiray.models.maskgit import MaskGIT, cosine_schedule
from emojiray.models.pixelsnail import HierarchicalPixelSNAIL, PixelSNAIL
from emojiray.models.prior import smoothed_cross_entropy
from emojiray.models.transformer import ARTransformer
from emojiray.registry import PRIORS

LAYOUT = CodeLayout(levels=("top", "bottom"), grids=((2, 2), (4, 4)), sizes=(5, 7))


def random_codes(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"top": torch.randint(0, 5, (b, 2, 2), generator=g), "bottom": torch.randint(0, 7, (b, 4, 4), generator=g)}


def test_layout_round_trip_and_allowed_ranges():
    codes = random_codes()
    tokens = LAYOUT.flatten(codes)
    assert tokens.shape == (3, 20) and LAYOUT.vocab_size == 12 and LAYOUT.seq_len == 20
    assert (tokens[:, :4] < 5).all() and (tokens[:, 4:] >= 5).all()
    back = LAYOUT.unflatten(tokens)
    assert all(torch.equal(back[k], codes[k]) for k in codes)
    allowed = LAYOUT.allowed()
    assert allowed[:4, :5].all() and not allowed[:4, 5:].any() and allowed[4:, 5:].all()


def test_ar_transformer_is_causal():
    torch.manual_seed(0)
    model = ARTransformer(LAYOUT, n_classes=3, dim=32, layers=2, heads=4, dropout=0.0).eval()
    tokens = LAYOUT.flatten(random_codes())
    cond = torch.tensor([0, 1, 2])
    base = model(tokens, cond)
    for i in (0, 3, 4, 11, 19):
        changed = tokens.clone()
        changed[:, i:] = LAYOUT.flatten(random_codes(seed=9))[:, i:]  # rewrite position i and later
        out = model(changed, cond)
        assert torch.allclose(out[:, : i + 1], base[:, : i + 1], atol=1e-5), f"position <= {i} saw the future"
    # and it does depend on the past
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 5
    assert not torch.allclose(model(changed, cond)[:, 1:], base[:, 1:])


def test_ar_logits_only_allow_own_level():
    model = ARTransformer(LAYOUT, dim=32, layers=1, heads=4).eval()
    logits = model(LAYOUT.flatten(random_codes()))
    assert torch.isinf(logits[:, :4, 5:]).all() and torch.isfinite(logits[:, :4, :5]).all()
    assert torch.isinf(logits[:, 4:, :5]).all()


def test_kv_cached_sampling_equals_uncached():
    torch.manual_seed(0)
    model = ARTransformer(LAYOUT, n_classes=3, dim=32, layers=2, heads=4, dropout=0.0).eval()
    cond = torch.tensor([0, 2, 1, 3])
    kw = dict(temperature=1.0, top_k=4, top_p=0.95, guidance=1.5)
    a = model.generate(4, cond, generator=torch.Generator().manual_seed(7), use_cache=True, **kw)
    b = model.generate(4, cond, generator=torch.Generator().manual_seed(7), use_cache=False, **kw)
    assert torch.equal(a, b)
    codes = LAYOUT.unflatten(a)
    assert codes["top"].max() < 5 and codes["bottom"].max() < 7 and codes["bottom"].min() >= 0


@pytest.mark.parametrize("kind", ["transformer", "maskgit", "pixelsnail"])
def test_guidance_zero_equals_unconditional(kind):
    torch.manual_seed(0)
    if kind == "transformer":
        model = ARTransformer(LAYOUT, n_classes=3, dim=32, layers=2, heads=4, dropout=0.0).eval()
    elif kind == "maskgit":
        model = MaskGIT(LAYOUT, n_classes=3, dim=32, layers=2, heads=4, dropout=0.0).eval()
    else:
        model = HierarchicalPixelSNAIL(("top", "bottom"), {"top": (2, 2), "bottom": (4, 4)},
                                       {"top": 5, "bottom": 7}, n_classes=3, channels=16, blocks=1,
                                       res_per_block=1, heads=2, dropout=0.0).eval()
    cond = torch.tensor([0, 1, 2])
    guided_ = model.generate(3, cond, guidance=0.0, generator=torch.Generator().manual_seed(3))
    uncond = model.generate(3, None, generator=torch.Generator().manual_seed(3))
    if isinstance(guided_, dict):
        assert all(torch.equal(guided_[k], uncond[k]) for k in guided_)
    else:
        assert torch.equal(guided_, uncond)
    conditional = model.generate(3, cond, generator=torch.Generator().manual_seed(3))
    differs = (any(not torch.equal(conditional[k], uncond[k]) for k in conditional)
               if isinstance(conditional, dict) else not torch.equal(conditional, uncond))
    assert differs, "the condition changes the samples"


def test_maskgit_schedule_and_decoding_fill_every_position():
    assert cosine_schedule(0.0) == 1.0 and abs(cosine_schedule(1.0)) < 1e-12
    r = torch.linspace(0, 1, 11)
    assert (cosine_schedule(r)[1:] <= cosine_schedule(r)[:-1]).all()
    torch.manual_seed(0)
    model = MaskGIT(LAYOUT, n_classes=2, dim=32, layers=2, heads=4).eval()
    for steps, choice in ((1, 4.5), (2, 4.5), (3, 0.0), (8, 4.5), (12, 1.0), (16, 4.5), (40, 4.5)):
        out = model.generate(5, torch.tensor([0, 1, 0, 1, 2]), steps=steps, choice_temperature=choice,
                             generator=torch.Generator().manual_seed(0))
        assert out.shape == (5, 20) and not (out == model.mask_id).any()
        codes = LAYOUT.unflatten(out)
        assert 0 <= codes["top"].min() and codes["top"].max() < 5 and 0 <= codes["bottom"].min() and codes["bottom"].max() < 7


def test_maskgit_complete_keeps_known_codes_and_fills_the_rest():
    torch.manual_seed(0)
    model = MaskGIT(LAYOUT, n_classes=2, dim=32, layers=2, heads=4, dropout=0.0).eval()
    tokens = LAYOUT.flatten(random_codes(b=4))
    unknown = torch.zeros_like(tokens, dtype=torch.bool)
    unknown[0, :] = True  # everything
    unknown[1, 5:9] = True  # a few bottom codes
    unknown[2, 1] = True  # one top code
    # row 3: nothing unknown -> returned unchanged
    given = tokens.masked_fill(unknown, model.mask_id)
    for steps in (1, 4, 12):
        out = model.complete(given, torch.tensor([0, 1, 2, 0]), steps=steps, guidance=2.0,
                             generator=torch.Generator().manual_seed(1))
        assert not (out == model.mask_id).any()
        assert torch.equal(out[~unknown], tokens[~unknown]), "known codes are never changed"
        codes = LAYOUT.unflatten(out)
        assert codes["top"].max() < 5 and codes["bottom"].min() >= 0 and codes["bottom"].max() < 7
    # from scratch, generate() is complete() of an all-masked sequence with the same random stream
    cond = torch.tensor([0, 1])
    a = model.generate(2, cond, steps=6, generator=torch.Generator().manual_seed(3))
    b = model.complete(torch.full((2, 20), model.mask_id), cond, steps=6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_maskgit_training_masks_follow_the_cosine_schedule():
    model = MaskGIT(LAYOUT, dim=32, layers=1, heads=4)
    tokens = LAYOUT.flatten(random_codes(b=2000))
    masked, mask = model.mask_for_training(tokens, torch.Generator().manual_seed(0))
    counts = mask.sum(1).float()
    assert counts.min() >= 1 and counts.max() <= 20
    assert torch.equal(masked[mask], torch.full_like(masked[mask], model.mask_id))
    assert torch.equal(masked[~mask], tokens[~mask])
    # E[ceil(cos(pi r / 2) N)] for r ~ U(0,1) is about 2N/pi (+0.5 for the ceiling)
    assert abs(counts.mean().item() - (2 * 20 / math.pi + 0.5)) < 0.5
    loss, _, _ = PRIORS["maskgit"].loss(model, LAYOUT, LAYOUT.unflatten(tokens[:8]), None)
    assert torch.isfinite(loss) and loss.item() > 0


def test_pixelsnail_is_causal():
    torch.manual_seed(0)
    net = PixelSNAIL(7, (4, 4), channels=16, blocks=2, res_per_block=1, heads=2, n_classes=2, cond_codes=5,
                     cond_upsample=2, dropout=0.0).eval()
    codes = torch.randint(0, 7, (2, 4, 4))
    top = torch.randint(0, 5, (2, 2, 2))
    base = net(codes, torch.tensor([0, 1]), top)
    for pos in (0, 5, 10, 15):
        i, j = divmod(pos, 4)
        changed = codes.clone().view(2, 16)
        changed[:, pos:] = torch.randint(0, 7, (2, 16 - pos))
        out = net(changed.view(2, 4, 4), torch.tensor([0, 1]), top)
        before = base.flatten(2)[:, :, : pos + 1]
        assert torch.allclose(out.flatten(2)[:, :, : pos + 1], before, atol=1e-5), f"({i},{j}) saw the future"
    # the bottom prior depends on the top codes everywhere, including position 0
    other_top = (top + 1) % 5
    assert not torch.allclose(net(codes, torch.tensor([0, 1]), other_top)[:, :, 0, 0], base[:, :, 0, 0])


def test_hierarchical_pixelsnail_shapes_and_sampling():
    model = HierarchicalPixelSNAIL(("top", "bottom"), {"top": (2, 2), "bottom": (4, 4)}, {"top": 5, "bottom": 7},
                                   channels=16, blocks=1, res_per_block=1, heads=2).eval()
    logits = model(random_codes())
    assert logits["top"].shape == (3, 5, 2, 2) and logits["bottom"].shape == (3, 7, 4, 4)
    codes = model.generate(2, generator=torch.Generator().manual_seed(0))
    assert codes["top"].shape == (2, 2, 2) and codes["bottom"].shape == (2, 4, 4)


def test_sampling_filters():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)[0, :2]).all()
    nucleus = filter_logits(logits, top_p=0.5)
    assert torch.isfinite(nucleus[0, 3]) and torch.isinf(nucleus[0, 0])
    assert sample_logits(logits, temperature=0).item() == 3
    g = torch.Generator().manual_seed(0)
    draws = sample_logits(logits.expand(4000, 4), generator=g)
    freq = torch.bincount(draws, minlength=4).float() / 4000
    assert torch.allclose(freq, logits.softmax(-1)[0], atol=0.03)
    assert torch.equal(guided(torch.ones(3), torch.zeros(3), 0.0), torch.zeros(3))
    assert torch.equal(guided(torch.ones(3), torch.zeros(3), 2.0), 2 * torch.ones(3))


def test_label_smoothing_spreads_only_over_the_allowed_codes():
    torch.manual_seed(0)
    logits = torch.randn(6, 9)
    target = torch.randint(0, 5, (6,))
    assert torch.allclose(smoothed_cross_entropy(logits, target), torch.nn.functional.cross_entropy(logits, target))
    assert torch.allclose(smoothed_cross_entropy(logits, target, 0.1),
                          torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1))
    # codes 5..8 belong to another level: -inf logits get no share and the loss stays finite
    masked = logits.clone()
    masked[:, 5:] = float("-inf")
    loss = smoothed_cross_entropy(masked, target, 0.2)
    logp = torch.log_softmax(logits[:, :5], -1)
    expected = (0.8 * -logp.gather(1, target[:, None]).squeeze(1) + 0.2 * -logp.mean(1)).mean()
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    # class dimension 1 (PixelSNAIL's (B, K, h, w) logits), summed
    grid = torch.randn(2, 5, 3, 3)
    tgt = torch.randint(0, 5, (2, 3, 3))
    assert torch.allclose(smoothed_cross_entropy(grid, tgt, 0.1, dim=1, reduction="sum"),
                          torch.nn.functional.cross_entropy(grid, tgt, label_smoothing=0.1, reduction="sum"))
