"""The code extractor's batch encoder, without Ray: codes, labels, splits and mirror images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emojiray.config import Config, DataConfig, ModelConfig
from emojiray.data.codes import MIRROR, Encoder, codes_from_table
from emojiray.images import to_model_input
from emojiray.models import build_vqvae
from emojiray.models import checkpoint as ckpt


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    cfg = Config(data=DataConfig(size=32), model=ModelConfig(channels=16, res_blocks=1, res_channels=8,
                                                             codebook_size=[32, 16], code_dim=[8, 8]))
    torch.manual_seed(0)
    vq = build_vqvae(cfg.model, 32)
    vq.train()(torch.randn(16, 3, 32, 32))  # k-means initialised codebooks
    d = tmp_path_factory.mktemp("vq")
    ckpt.save(d, vq, "vqvae", cfg.to_dict(), step=0, epoch=0)
    return str(d), vq.eval()


def batch(n=5):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    image[:, :, :16] = 255  # left half white: an image unlike its mirror image
    return {"image": image, "key": np.asarray([f"k{i}" for i in range(n)], dtype=object),
            "category": np.arange(n), "vendor": np.zeros(n, np.int64), "emotion": np.arange(n) % 3,
            "split": np.asarray(["train", "val", "train", "test", "train"][:n], dtype=object)}


def encode(vq, images):
    with torch.no_grad():
        return vq.encode(to_model_input(torch.from_numpy(np.ascontiguousarray(images)), channels_last=False))


def test_codes_are_the_tokenizers_encodings_with_the_labels(tokenizer):
    uri, vq = tokenizer
    b = batch()
    table = Encoder(uri, tuple(vq.levels))(b)
    assert table.num_rows == 5 and table.column("key").to_pylist() == list(b["key"])
    assert table.column("category").to_pylist() == list(range(5))
    assert table.column("split").to_pylist() == list(b["split"])  # the driver files each row by it
    manifest = {"levels": list(vq.levels), "grids": {"top": [4, 4], "bottom": [8, 8]}}
    grids = codes_from_table(table, manifest)
    want = encode(vq, b["image"])
    assert all(np.array_equal(grids[lv], want[lv].numpy()) for lv in vq.levels)


def test_mirror_adds_the_codes_of_the_flipped_train_images_with_the_same_labels(tokenizer):
    """The splits share one pipeline: only the rows of the mirrored split (train) get mirror images."""
    uri, vq = tokenizer
    b = batch()
    train = np.flatnonzero(b["split"] == "train")  # rows 0, 2, 4
    table = Encoder(uri, tuple(vq.levels), mirror="train")(b)
    assert table.num_rows == 5 + len(train)
    assert table.column("key").to_pylist() == [*b["key"], *(f"{b['key'][i]}{MIRROR}" for i in train)]
    for name in ("category", "vendor", "emotion", "split"):
        assert table.column(name).to_pylist() == [*b[name], *b[name][train]]
    grids = codes_from_table(table, {"levels": list(vq.levels), "grids": {"top": [4, 4], "bottom": [8, 8]}})
    plain, flipped = encode(vq, b["image"]), encode(vq, b["image"][train, :, ::-1])
    for lv in vq.levels:
        assert np.array_equal(grids[lv][:5], plain[lv].numpy())
        assert np.array_equal(grids[lv][5:], flipped[lv].numpy())
        assert not np.array_equal(grids[lv][5:], grids[lv][train])  # the mirror images are other code grids
