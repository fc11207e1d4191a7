"""Pure-PyTorch models (no Ray): quantizers, VQ-VAE tokenizers, and (later) priors."""

from emojiray.models.quantize import VectorQuantizer
from emojiray.models.vqvae import VQVAE, VQVAE2, build_vqvae

__all__ = ["VectorQuantizer", "VQVAE", "VQVAE2", "build_vqvae"]
