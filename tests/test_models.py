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


# -- GaussianVAE -----------------------------------------------------------------------------


def digit_like_batch(seed=0, batch=4, data_dim=6):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(batch, data_dim))


def tiny_vae(seed=0):
    from minireparam.models import GaussianVAE

    return GaussianVAE(data_dim=6, hidden_size=5, latent_dim=3, generator=mr.Generator(seed)).double()


def bce_with_logits_sum(logits, targets):
    """Σ of max(l, 0) − l·t + log(1 + exp(−|l|)), the stable binary cross-entropy, per row."""
    return np.sum(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits))), axis=-1)


def test_vae_loss_matches_formula():
    model = tiny_vae()
    x = digit_like_batch()
    loss = model.negative_elbo(x, generator=mr.Generator(7)).item()

    q = model.encode(x)
    z = q.rsample(generator=mr.Generator(7)).data
    mean, std = q.mean.data, q.stddev.data
    reconstruction = bce_with_logits_sum(model.decode(mr.tensor(z)).data, x)
    kl = 0.5 * np.sum(mean ** 2 + std ** 2 - 1.0 - 2.0 * np.log(std), axis=-1)
    # float64 throughout: only summation order differs.
    assert loss == pytest.approx(np.mean(reconstruction + kl), rel=1e-12)


def test_vae_gradients_all_parameters():
    model = tiny_vae(seed=1)
    x = digit_like_batch(seed=1, batch=3)
    # A fresh generator per call fixes ε, so the loss is a smooth function of the weights.
    gradcheck_loss(model, lambda: model.negative_elbo(x, generator=mr.Generator(3)))


def test_vae_iw_bound_single_sample_formula():
    model = tiny_vae(seed=2)
    x = digit_like_batch(seed=2)
    bound = model.importance_weighted_bound(x, samples=1, generator=mr.Generator(5))

    q = model.encode(x)
    z = q.sample((1,), generator=mr.Generator(5)).data[0]
    log_likelihood = -bce_with_logits_sum(model.decode(mr.tensor(z)).data, x)
    log_prior = np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), axis=-1)
    mean, std = q.mean.data, q.stddev.data
    log_posterior = np.sum(-0.5 * ((z - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=-1)
    np.testing.assert_allclose(bound, -(log_likelihood + log_prior - log_posterior), rtol=1e-10)


def test_vae_iw_bound_tightens_with_samples():
    model = tiny_vae(seed=3)
    x = digit_like_batch(seed=3, batch=200)
    single = model.importance_weighted_bound(x, samples=1, generator=mr.Generator(0)).mean()
    many = model.importance_weighted_bound(x, samples=50, generator=mr.Generator(1)).mean()
    elbo = model.test_negative_elbo(x, samples=20, generator=mr.Generator(2))
    assert many < single, f"K=50 bound {many} must be below the K=1 bound {single}"
    assert many < elbo, f"K=50 bound {many} must be below the negative ELBO {elbo}"


def test_vae_iw_bound_batches_agree():
    model = tiny_vae(seed=4)
    x = digit_like_batch(seed=4, batch=10)
    whole = model.importance_weighted_bound(x, samples=4, generator=mr.Generator(0), batch_size=10)
    assert whole.shape == (10,)
    assert np.all(np.isfinite(whole))


def test_vae_matches_torch():
    torch = pytest.importorskip("torch")
    model = tiny_vae(seed=5)
    x = digit_like_batch(seed=5)
    loss = model.negative_elbo(x, generator=mr.Generator(9))
    loss.backward()

    q = model.encode(x)
    z = q.rsample(generator=mr.Generator(9)).data
    noise = torch.from_numpy((z - q.mean.data) / q.stddev.data)
    state = {name: torch.from_numpy(array.copy()).requires_grad_() for name, array in model.state_dict().items()}
    features = torch.relu(torch.nn.functional.linear(torch.from_numpy(x), state["encoder.0.weight"],
                                                     state["encoder.0.bias"]))
    features = torch.relu(torch.nn.functional.linear(features, state["encoder.2.weight"], state["encoder.2.bias"]))
    mean = torch.nn.functional.linear(features, state["to_mean.weight"], state["to_mean.bias"])
    logvar = torch.nn.functional.linear(features, state["to_logvar.weight"], state["to_logvar.bias"])
    hidden = mean + torch.exp(0.5 * logvar) * noise
    hidden = torch.relu(torch.nn.functional.linear(hidden, state["decoder.0.0.weight"], state["decoder.0.0.bias"]))
    hidden = torch.relu(torch.nn.functional.linear(hidden, state["decoder.0.2.weight"], state["decoder.0.2.bias"]))
    logits = torch.nn.functional.linear(hidden, state["decoder.1.weight"], state["decoder.1.bias"])
    reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(x), reduction="sum")
    kl = -0.5 * torch.sum(1.0 + logvar - mean ** 2 - logvar.exp())
    torch_loss = (reconstruction + kl) / x.shape[0]
    torch_loss.backward()

    # float64 on both sides; ε is recovered as (z − μ)/σ, which costs a few ulps.
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-10)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, state[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_vae_pictures_in_unit_range():
    model = tiny_vae(seed=6)
    x = digit_like_batch(seed=6)
    for name, images, rows in [
        ("reconstruct", model.reconstruct(x), 4),
        ("sample_images", model.sample_images(5, mr.Generator(0)), 5),
        ("interpolate", model.interpolate(x[0], x[1], steps=7), 7),
    ]:
        assert images.shape == (rows, 6), name
        assert images.min() >= 0.0, name
        assert images.max() <= 1.0, name


def test_vae_interpolation_ends_at_means():
    model = tiny_vae(seed=7)
    x = digit_like_batch(seed=7)
    path = model.interpolate(x[0], x[1], steps=5)
    np.testing.assert_allclose(path[[0, -1]], model.reconstruct(x[:2]), rtol=1e-12)


# -- GumbelVAE -------------------------------------------------------------------------------


def tiny_gumbel_vae(seed=0, variables=2, categories=3):
    from minireparam.models import GumbelVAE

    return GumbelVAE(data_dim=6, hidden_size=5, latent_variables=variables, categories=categories,
                     generator=mr.Generator(seed)).double()


def test_temperature_schedule():
    from minireparam.models import temperature_schedule

    assert temperature_schedule(0) == 1.0
    assert temperature_schedule(1000, initial=1.0, minimum=0.1, rate=1e-3) == pytest.approx(math.exp(-1.0))
    assert temperature_schedule(10**6) == 0.5


def test_gumbel_kl_to_uniform():
    model = tiny_gumbel_vae()
    uniform = mr.tensor(np.full((4, 2, 3), -math.log(3.0)))
    np.testing.assert_allclose(model.kl_to_uniform(uniform).data, 0.0, atol=1e-15)
    log_q = model.encode(digit_like_batch()).data
    q = np.exp(log_q)
    expected = np.sum(q * (log_q + math.log(3.0)), axis=(-2, -1))
    np.testing.assert_allclose(model.kl_to_uniform(mr.tensor(log_q)).data, expected, rtol=1e-12)


def test_gumbel_gradients_all_parameters():
    model = tiny_gumbel_vae(seed=1)
    x = digit_like_batch(seed=1, batch=3)
    gradcheck_loss(model, lambda: model.negative_elbo(x, temperature=0.7, generator=mr.Generator(3)))


def test_gumbel_hard_forward_is_one_hot():
    model = tiny_gumbel_vae(seed=2)
    x = digit_like_batch(seed=2)
    seen = []
    original_decode = model.decode

    def recording_decode(z):
        seen.append(z.data.copy())
        return original_decode(z)

    model.decode = recording_decode
    model.negative_elbo(x, temperature=0.5, hard=True, generator=mr.Generator(0))
    z = seen[0]
    assert z.shape == (4, 2, 3)
    np.testing.assert_array_equal(np.sort(z, axis=-1)[..., :-1], 0.0)
    np.testing.assert_array_equal(z.max(axis=-1), 1.0)


def test_gumbel_test_elbo_matches_enumeration():
    model = tiny_gumbel_vae(seed=3)
    x = digit_like_batch(seed=3, batch=1)
    log_q = model.encode(x).data[0]
    exact = 0.0
    for first in range(3):
        for second in range(3):
            z = np.zeros((1, 2, 3))
            z[0, 0, first] = 1.0
            z[0, 1, second] = 1.0
            probability = math.exp(log_q[0, first] + log_q[1, second])
            exact += probability * bce_with_logits_sum(model.decode(mr.tensor(z)).data, x)[0]
    exact += model.kl_to_uniform(mr.tensor(log_q[None])).data[0]

    estimate = model.test_negative_elbo(x, samples=4000, generator=mr.Generator(0))
    single = [model.test_negative_elbo(x, samples=1, generator=mr.Generator(s)) for s in range(200)]
    standard_error = np.std(single) / math.sqrt(4000)
    # 5 standard errors: a false failure has probability below 1e-6.
    assert abs(estimate - exact) < 5 * standard_error + 1e-12, (estimate, exact, standard_error)


# -- latent objectives with exact gradients --------------------------------------------------


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_objective_exact_gradient_formula(kind):
    from minireparam.models.latent_objectives import CategoricalLatentObjective, GaussianLatentObjective

    objective_class = GaussianLatentObjective if kind == "gaussian" else CategoricalLatentObjective
    objective = objective_class(rng=np.random.default_rng(1))
    for index, (autodiff, formula) in enumerate(zip(objective.exact_gradient(), objective.exact_gradient_formula())):
        np.testing.assert_allclose(autodiff, formula, rtol=1e-12, atol=1e-14, err_msg=f"parameter {index}")


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_objective_expectation_matches_monte_carlo(kind):
    from minireparam.models.latent_objectives import CategoricalLatentObjective, GaussianLatentObjective

    objective_class = GaussianLatentObjective if kind == "gaussian" else CategoricalLatentObjective
    objective = objective_class(rng=np.random.default_rng(2))
    q = objective.distribution(*objective.parameters)
    values = objective.function(q.sample((20000,), generator=mr.Generator(0))).data
    exact = objective.expectation(*objective.parameters).item()
    standard_error = values.std() / math.sqrt(values.size)
    # 5 standard errors: a false failure has probability below 1e-6.
    assert abs(values.mean() - exact) < 5 * standard_error, (values.mean(), exact, standard_error)
