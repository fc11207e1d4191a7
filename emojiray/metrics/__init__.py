"""Metrics core (pure PyTorch/numpy/scipy, never imports Ray).

* ``image``: MSE, PSNR, SSIM of reconstructions in [-1, 1], and a streaming ReconstructionMeter;
* ``inception``: the standard TF-Inception pool3 network for FID (fixed resize protocol);
* ``fid``: mergeable feature statistics, FID, KID, k-NN precision/recall on any feature vectors;
* ``codes``: codebook usage, perplexity, KL to uniform and bits per image from code indices.

The Inception network file is only read when an ``InceptionFeatures`` is created.
"""

from emojiray.metrics.codes import (
    bits_per_image,
    code_histogram,
    entropy_bits,
    entropy_coded_bits_per_image,
    entropy_nats,
    kl_from_uniform,
    kl_from_uniform_bits,
    perplexity,
    usage,
)
from emojiray.metrics.fid import FeatureStats, fid_from_features, frechet_distance, kid, precision_recall
from emojiray.metrics.image import ReconstructionMeter, mse, psnr, ssim
from emojiray.metrics.inception import InceptionFeatures, to_uint8_nhwc

__all__ = [
    "FeatureStats",
    "InceptionFeatures",
    "ReconstructionMeter",
    "bits_per_image",
    "code_histogram",
    "entropy_bits",
    "entropy_coded_bits_per_image",
    "entropy_nats",
    "fid_from_features",
    "frechet_distance",
    "kid",
    "kl_from_uniform",
    "kl_from_uniform_bits",
    "mse",
    "perplexity",
    "precision_recall",
    "psnr",
    "ssim",
    "to_uint8_nhwc",
    "usage",
]
