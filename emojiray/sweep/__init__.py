"""Hyperparameter sweeps of the tokenizer: the search space and report (pure) and the Ray Tune driver."""
