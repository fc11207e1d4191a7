"""Generation: sampling codes from a prior and decoding them (sampler.py is pure PyTorch)."""
