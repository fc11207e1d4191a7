"""Pure-PyTorch models (no Ray): quantizers, VQ-VAE tokenizers, and (later) priors."""

from emojiray.models.quantize import FSQuantizer, VectorQuantizer
from emojiray.models.vqvae import VQVAE, VQVAE2, build_vqvae

__all__ = ["FSQuantizer", "VectorQuantizer", "VQVAE", "VQVAE2", "build_vqvae"]
