"""Train a two-layer MLP on scikit-learn's 8x8 digits with the bare autograd core.

No nn or optim modules: the parameters are plain Tensors and the update is written out,
so this script shows the tape alone at work. Prints the test accuracy.
"""
import argparse
import time

import numpy as np

import minireparam as mr


def load_digits_split():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit('scikit-learn is missing: pip install -e ".[examples]"') from None
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    return (images[:1437], labels[:1437]), (images[1437:], labels[1437:])


def init_parameters(generator, hidden):
    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return mr.tensor(generator.uniform(-bound, bound, shape), requires_grad=True)

    return [uniform((64, hidden), 64), uniform((hidden,), 64), uniform((hidden, 10), hidden), uniform((10,), hidden)]


def forward(parameters, images):
    w1, b1, w2, b2 = parameters
    hidden = mr.relu(mr.tensor(images) @ w1 + b1)
    return hidden @ w2 + b2


def cross_entropy(logits, labels):
    log_probabilities = mr.log_softmax(logits, axis=-1)
    picked = mr.take_along_axis(log_probabilities, labels[:, None], axis=1)
    return -mr.mean(picked)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500, help="SGD steps (default: 1500)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quick", action="store_true", help="200 steps, for a smoke test (seconds)")
    args = parser.parse_args()
    steps = 200 if args.quick else args.steps

    start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = load_digits_split()
    generator = mr.Generator(args.seed)
    parameters = init_parameters(generator, args.hidden)

    for step in range(1, steps + 1):
        batch = generator.integers(0, len(train_x), size=args.batch_size)
        loss = cross_entropy(forward(parameters, train_x[batch]), train_y[batch])
        for p in parameters:
            p.grad = None
        loss.backward()
        with mr.no_grad():
            for p in parameters:
                p -= args.lr * p.grad
        if step % 100 == 0 or step == 1:
            print(f"step {step:5d}  loss {loss.item():.4f}")

    with mr.no_grad():
        predictions = forward(parameters, test_x).data.argmax(axis=1)
    accuracy = float((predictions == test_y).mean())
    print(f"test accuracy {accuracy:.4f} on {len(test_y)} images ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
