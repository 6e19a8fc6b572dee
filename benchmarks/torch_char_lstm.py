"""The char-LSTM recipe of examples/char_lstm.py in PyTorch: the quality reference.

The data pipeline is minireparam.data's: the pydoc corpus, its 90/10 split, the same
evaluation windows, and window offsets drawn from the same Generator stream for the same
seed. The model (embedding 64, one LSTM layer of 256, linear read-out), the optimizer
(Adam 2e-3, gradient-norm clip 1.0) and the step count are the same too. Only the
framework differs, and the initial weights: PyTorch's own default initialization from
torch.manual_seed, unless --same-init copies minireparam's initial weights in.

Prints and writes (--metrics) the training and validation bits per character.
Needs PyTorch (`pip install torch==2.13.0`, the CPU build).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

import minireparam as mr
from minireparam.data import load_corpus, random_windows, sequential_windows


class TorchCharLSTM(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids):
        hidden, _state = self.lstm(self.embedding(ids))
        return self.head(hidden)


def mean_loss(model, inputs, targets):
    logits = model(torch.from_numpy(inputs))
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1))


def bits_per_character(model, inputs, targets, batch_size=128):
    total_nats = 0.0
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch_targets = targets[start:start + batch_size]
            total_nats += mean_loss(model, inputs[start:start + batch_size], batch_targets).item() * batch_targets.size
    return total_nats / targets.size / math.log(2.0)


def copy_minireparam_init(model, corpus, args, init_generator):
    """Load the initial weights minireparam's CharLSTM draws for this seed (parameter names match)."""
    from minireparam.models import CharLSTM

    reference = CharLSTM(corpus.vocabulary.size, args.embedding_dim, args.hidden_size, generator=init_generator)
    state = {name: torch.from_numpy(np.array(array)) for name, array in reference.state_dict().items()}
    model.load_state_dict(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    parser.add_argument("--embedding-dim", type=int, default=64, help="character embedding size (default: 64)")
    parser.add_argument("--hidden-size", type=int, default=256, help="LSTM units (default: 256)")
    parser.add_argument("--seq-len", type=int, default=64, help="characters per window (default: 64)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per step (default: 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: 2e-3)")
    parser.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data stream and torch (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--same-init", action="store_true", help="start from minireparam's initial weights")
    parser.add_argument("--metrics", default="runs/torch_char_lstm/metrics.json", metavar="PATH",
                        help="metrics JSON file (default: runs/torch_char_lstm/metrics.json)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    corpus = load_corpus()
    validation = sequential_windows(corpus.validation_ids, args.seq_len)
    training_sample = sequential_windows(corpus.train_ids, args.seq_len, len(validation[0]))
    # The same three streams as examples/char_lstm.py: initialization, training draws, sampling.
    init_generator, train_generator, _sample_generator = mr.Generator(args.seed).spawn(3)

    torch.manual_seed(args.seed)
    model = TorchCharLSTM(corpus.vocabulary.size, args.embedding_dim, args.hidden_size)
    if args.same_init:
        copy_minireparam_init(model, corpus, args, init_generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        inputs, targets = random_windows(corpus.train_ids, args.batch_size, args.seq_len, train_generator)
        optimizer.zero_grad()
        loss = mean_loss(model, inputs, targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if step % 100 == 0 or step == 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - started:.1f} s", flush=True)
    seconds = time.perf_counter() - started

    model.eval()
    metrics = {
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "steps": args.steps,
        "same_init": args.same_init,
        "seconds": round(seconds, 3),
        "train_bits_per_char": bits_per_character(model, *training_sample),
        "validation_bits_per_char": bits_per_character(model, *validation),
    }
    print(json.dumps(metrics, indent=2))
    os.makedirs(os.path.dirname(os.path.abspath(args.metrics)), exist_ok=True)
    with open(args.metrics, "w", encoding="utf-8") as stream:
        json.dump(metrics, stream, indent=2)


if __name__ == "__main__":
    main()
