"""Tests of minireparam.models: the language models, the VAEs and their shared pieces.

Gradients are checked in float64 by central differences on tiny sizes. Where PyTorch is
installed, the models' losses and every parameter gradient are compared with the same
architecture in PyTorch, loaded with the same weights.
"""
import math

import numpy as np
import pytest

import minireparam as mr
from minireparam.models import CharLSTM, TinyGPT, bits_per_character, sample_next

VOCAB = 7


def tiny_batch(seed=0, batch=3, time=5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=(batch, time)), rng.integers(0, VOCAB, size=(batch, time))


def gradcheck_loss(model, loss):
    """Gradcheck ``loss()`` with respect to every parameter of ``model`` (in float64)."""
    parameters = list(model.parameters())

    def function(*tensors):
        return loss()

    # atol 1e-5 and rtol 1e-3 are gradcheck's defaults: float64 central differences with
    # eps 1e-6 are accurate to about 1e-8 on these O(1) losses.
    assert mr.gradcheck(function, parameters)


# -- shared pieces ---------------------------------------------------------------------------


def test_sample_next_zero_temperature_is_argmax():
    logits = np.array([[0.1, 2.0, -1.0], [5.0, 0.0, 4.9]])
    np.testing.assert_array_equal(sample_next(logits, 0.0), [1, 0])


def test_sample_next_matches_softmax():
    logits = np.array([[0.0, 1.0, 2.0, -1.0]])
    probabilities = np.exp(logits[0] / 0.7) / np.exp(logits[0] / 0.7).sum()
    generator = mr.Generator(0)
    draws = np.array([sample_next(logits, 0.7, generator)[0] for _ in range(4000)])
    counts = np.bincount(draws, minlength=4)
    standard_errors = np.sqrt(4000 * probabilities * (1 - probabilities))
    # 5 standard errors per class: a false failure has probability below 1e-5.
    assert np.all(np.abs(counts - 4000 * probabilities) < 5 * standard_errors), (counts, 4000 * probabilities)


def test_sample_next_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got -1"):
        sample_next(np.zeros((1, 3)), -1.0)
    with pytest.raises(ValueError, match="got nan"):
        sample_next(np.zeros((1, 3)), float("nan"))


def test_bits_per_character_of_uniform_model():
    inputs, targets = tiny_batch(batch=10)

    def uniform_loss(batch_inputs, batch_targets):
        logits = mr.zeros((batch_targets.size, VOCAB))
        return mr.nn.functional.cross_entropy(logits, batch_targets.reshape(-1))

    # Batches of 4 over 10 windows: the uneven last batch must be weighted by its size.
    assert bits_per_character(uniform_loss, inputs, targets, batch_size=4) == pytest.approx(math.log2(VOCAB))


# -- CharLSTM --------------------------------------------------------------------------------


def test_char_lstm_shapes_and_initial_loss():
    model = CharLSTM(VOCAB, embedding_dim=4, hidden_size=6, generator=mr.Generator(0))
    inputs, targets = tiny_batch()
    logits, (h, c) = model(inputs)
    assert logits.shape == (3, 5, VOCAB)
    assert h.shape == (1, 3, 6)
    assert c.shape == (1, 3, 6)
    # Fresh weights give near-uniform predictions, so the loss is close to log V.
    assert abs(model.loss(inputs, targets).item() - math.log(VOCAB)) < 0.3


def test_char_lstm_state_carries_across_calls():
    model = CharLSTM(VOCAB, embedding_dim=4, hidden_size=6, generator=mr.Generator(1)).double()
    inputs, _ = tiny_batch(time=8)
    whole, _ = model(inputs)
    first, state = model(inputs[:, :3])
    second, _ = model(inputs[:, 3:], state)
    joined = np.concatenate([first.data, second.data], axis=1)
    # Same float64 arithmetic in another grouping of steps: equal to rounding.
    np.testing.assert_allclose(joined, whole.data, rtol=0, atol=1e-12)


def test_char_lstm_gradients_all_parameters():
    model = CharLSTM(VOCAB, embedding_dim=3, hidden_size=4, generator=mr.Generator(2)).double()
    inputs, targets = tiny_batch(batch=2, time=4)
    gradcheck_loss(model, lambda: model.loss(inputs, targets))


def test_char_lstm_generate_reproducible():
    model = CharLSTM(VOCAB, embedding_dim=4, hidden_size=6, generator=mr.Generator(0))
    first = model.generate(np.array([1, 2]), 12, temperature=1.0, generator=mr.Generator(5))
    again = model.generate(np.array([1, 2]), 12, temperature=1.0, generator=mr.Generator(5))
    assert first.shape == (12,)
    assert first.min() >= 0
    assert first.max() < VOCAB
    np.testing.assert_array_equal(first, again)
    assert model.training, "generate must restore training mode"


def test_char_lstm_greedy_matches_stepwise_argmax():
    model = CharLSTM(VOCAB, embedding_dim=4, hidden_size=6, generator=mr.Generator(3))
    sampled = model.generate(np.array([4]), 5, temperature=0.0)
    sequence = np.array([4])
    for t in range(5):
        logits, _ = model(sequence[None, :])
        expected = int(logits.data[0, -1].argmax())
        assert sampled[t] == expected, f"greedy step {t}"
        sequence = np.append(sequence, expected)


def test_char_lstm_empty_prompt_raises():
    model = CharLSTM(VOCAB, embedding_dim=4, hidden_size=6)
    with pytest.raises(ValueError, match="at least one character"):
        model.generate(np.array([], dtype=np.int64), 3)


def test_char_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    model = CharLSTM(VOCAB, embedding_dim=5, hidden_size=6, generator=mr.Generator(4)).double()
    inputs, targets = tiny_batch(batch=3, time=6)

    reference = torch.nn.ModuleDict({
        "embedding": torch.nn.Embedding(VOCAB, 5),
        "lstm": torch.nn.LSTM(5, 6, batch_first=True),
        "head": torch.nn.Linear(6, VOCAB),
    }).double()
    reference.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in model.state_dict().items()})
    hidden, _ = reference["lstm"](reference["embedding"](torch.from_numpy(inputs)))
    logits = reference["head"](hidden)
    torch_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(targets).reshape(-1))
    torch_loss.backward()

    loss = model.loss(inputs, targets)
    loss.backward()
    # float64 on both sides: the only differences are summation orders, near 1e-16 relative.
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-12)
    torch_grads = {name: p.grad.numpy() for name, p in reference.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, torch_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


# -- TinyGPT ---------------------------------------------------------------------------------


def tiny_gpt(seed=0, dropout=0.0, **kwargs):
    return TinyGPT(VOCAB, context=8, d_model=8, n_heads=2, n_layers=2, dropout=dropout,
                   generator=mr.Generator(seed), **kwargs)


def test_gpt_shapes_and_initial_loss():
    model = tiny_gpt()
    inputs, targets = tiny_batch(time=8)
    assert model(inputs).shape == (3, 8, VOCAB)
    assert abs(model.loss(inputs, targets).item() - math.log(VOCAB)) < 0.3


def test_gpt_is_causal():
    model = tiny_gpt(seed=1).double()
    inputs, _ = tiny_batch(time=8)
    changed = inputs.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % VOCAB
    before = model(inputs).data
    after = model(changed).data
    np.testing.assert_array_equal(before[:, :5], after[:, :5], err_msg="a later token changed an earlier logit")
    assert not np.allclose(before[:, 5:], after[:, 5:]), "changed tokens must change their own logits"


def test_gpt_gradients_all_parameters():
    # One block of width 4 keeps the ~400 central differences fast.
    model = TinyGPT(VOCAB, context=4, d_model=4, n_heads=2, n_layers=1, dropout=0.0, generator=mr.Generator(2)).double()
    inputs, targets = tiny_batch(batch=2, time=4)
    gradcheck_loss(model, lambda: model.loss(inputs, targets))


def test_gpt_rejects_long_input_and_bad_heads():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="sequence length 9 exceeds the context of 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="d_model 10 must be divisible by n_heads 4"):
        TinyGPT(VOCAB, d_model=10, n_heads=4)


def test_gpt_dropout_uses_dropout_generator():
    inputs, _ = tiny_batch(time=8)
    outputs = {}
    for name, seed in (("first", 9), ("same", 9), ("other", 10)):
        model = tiny_gpt(dropout=0.5, dropout_generator=mr.Generator(seed))
        outputs[name] = model(inputs).data
    np.testing.assert_array_equal(outputs["first"], outputs["same"])
    assert not np.array_equal(outputs["first"], outputs["other"]), "another dropout stream must give other masks"


def test_gpt_eval_mode_skips_dropout():
    inputs, _ = tiny_batch(time=8)
    model = tiny_gpt(dropout=0.5, dropout_generator=mr.Generator(9))
    model.eval()
    without_dropout = tiny_gpt(dropout=0.0)
    np.testing.assert_array_equal(model(inputs).data, without_dropout(inputs).data)


def test_gpt_generate_beyond_context():
    model = tiny_gpt(seed=3)
    sampled = model.generate(np.array([1, 2, 3]), 20, temperature=0.9, generator=mr.Generator(0))
    assert sampled.shape == (20,)
    assert sampled.max() < VOCAB


def test_default_prompt_falls_back_to_text():
    from minireparam.data import CharVocabulary
    from minireparam.models import default_prompt

    assert default_prompt(CharVocabulary("The cat"), "The cat") == "The "
    assert default_prompt(CharVocabulary("abc def"), "abc def") == "a"
