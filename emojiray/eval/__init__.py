"""Evaluation stages: measure trained models (tokenizers here; samples later)."""
