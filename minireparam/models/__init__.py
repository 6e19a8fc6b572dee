"""Reusable models for the examples, and the training harness they share.

``CharLSTM`` and ``TinyGPT`` are character language models, ``GaussianVAE`` and
``GumbelVAE`` are digit autoencoders with continuous and discrete latents, and
``training.Trainer`` runs any of them with checkpoints and exact resume.
"""
from .char_lstm import CharLSTM
from .gpt import TinyGPT
from .gumbel_vae import GumbelVAE, temperature_schedule
from .language import bits_per_character, default_prompt, sample_next
from .training import NonFiniteLossError, ResumeError, Trainer, TrainingResult
from .vae import GaussianVAE

__all__ = [
    "CharLSTM", "TinyGPT", "GaussianVAE", "GumbelVAE", "temperature_schedule", "bits_per_character",
    "default_prompt", "sample_next", "Trainer", "TrainingResult", "NonFiniteLossError", "ResumeError",
]
