"""emojiray: VQ-VAE tokenizers and latent priors that learn to draw emoji, on Ray.

The package splits into a pure-PyTorch/numpy core (images, labels, models, metrics) that never
imports Ray, and a thin Ray layer (`emojiray.data.stream`, training loops, actor pools, jobs).
"""

__version__ = "0.1.0"
