"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedulers, with PyTorch's API.

Each step updates all parameters of a group with whole-buffer numpy operations on flat
state buffers (see ``optimizer.py``), inside ``no_grad``, and bumps every updated
parameter's version counter.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
