"""Reusable models for the examples, and the training harness they share.

``CharLSTM`` and ``TinyGPT`` are character language models, and ``training.Trainer``
runs any model with checkpoints and exact resume.
"""
from .char_lstm import CharLSTM
from .gpt import TinyGPT
from .language import bits_per_character, default_prompt, sample_next
from .training import NonFiniteLossError, ResumeError, Trainer, TrainingResult

__all__ = [
    "CharLSTM", "TinyGPT", "bits_per_character", "default_prompt", "sample_next", "Trainer", "TrainingResult",
    "NonFiniteLossError", "ResumeError",
]
