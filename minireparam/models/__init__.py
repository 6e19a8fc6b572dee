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

# The remaining systems: a digit GAN and its judge, translation, a sentence VAE and search.
from .classifier import DigitClassifier, sample_quality  # noqa: E402
from .gan import DigitGAN, gradient_penalty, r1_penalty  # noqa: E402
from .search import SearchIndex, SentenceVAEEncoder, LanguageModelEncoder  # noqa: E402
from .sentence_vae import SentenceVAE, kl_weight  # noqa: E402
from .seq2seq import Seq2SeqAttention  # noqa: E402

__all__ += [
    "DigitClassifier", "sample_quality", "DigitGAN", "gradient_penalty", "r1_penalty", "SearchIndex",
    "SentenceVAEEncoder", "LanguageModelEncoder", "SentenceVAE", "kl_weight", "Seq2SeqAttention",
]
