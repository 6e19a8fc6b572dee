"""Gradient estimators against exact gradients: unbiased ones within 5 standard errors of
the exact value over repeated draws (false-failure rate 5.7e-7 per element over seeds),
biased ones (relaxed, straight-through) more than 5 standard errors away.
"""
import math

import numpy as np
import pytest

import minireparam as mr
import minireparam.distributions as D
from minireparam import estimators as E

Z_LIMIT = 5.0


def t64(x, requires_grad=False):
    return mr.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def assert_unbiased(report, what):
    for index, z in enumerate(report.bias_z_scores()):
        assert (z < Z_LIMIT).all(), f"{what}: parameter {index} bias {report.bias[index]} is {z} standard errors"


def assert_biased(report, what):
    largest = max(float(z.max()) for z in report.bias_z_scores())
    assert largest > Z_LIMIT, f"{what}: expected a detectable bias, largest z-score {largest:.1f}"


# -- reparameterization -------------------------------------------------------------------


def test_reparameterization_gradient_is_unbiased():
    loc, scale = t64(0.7, True), t64(1.3, True)

    def estimate(generator):
        return E.reparameterization_gradient(D.Normal, [loc, scale], lambda z: z * z, 4, generator=generator)

    report = E.measure_estimator(estimate, exact=(2 * 0.7, 2 * 1.3), repeats=400, generator=mr.Generator(0))
    assert_unbiased(report, "reparameterization, Normal, f = z^2")
    assert report.repeats == 400
    assert report.total_variance() > 0


def test_reparameterization_requires_rsample():
    with pytest.raises(NotImplementedError, match="score_function_gradient"):
        E.reparameterization_gradient(lambda p: D.Bernoulli(probs=p), [t64(0.3, True)], lambda z: z)


# -- score function on a Bernoulli --------------------------------------------------------

LOGIT = 0.4
TARGET = 0.45


def bernoulli_objective(z):
    return (z - TARGET) * (z - TARGET)


def bernoulli_exact():
    p = sigmoid(LOGIT)
    # E[f] = p·f(1) + (1 − p)·f(0), so dE/dlogit = σ'(logit)·(f(1) − f(0)).
    return (p * (1 - p) * ((1 - TARGET) ** 2 - TARGET**2),)


def bernoulli_estimator(baseline, num_samples=8):
    logit = t64(LOGIT, True)

    def estimate(generator):
        return E.score_function_gradient(lambda l: D.Bernoulli(logits=l), [logit], bernoulli_objective,
                                         num_samples=num_samples, baseline=baseline, generator=generator)

    return estimate


def test_score_function_without_baseline_is_unbiased():
    report = E.measure_estimator(bernoulli_estimator(None), bernoulli_exact(), repeats=2000, generator=mr.Generator(1))
    assert_unbiased(report, "score function, no baseline")


def test_leave_one_out_baseline():
    plain = E.measure_estimator(bernoulli_estimator(None), bernoulli_exact(), repeats=2000, generator=mr.Generator(2))
    loo = E.measure_estimator(bernoulli_estimator("leave_one_out"), bernoulli_exact(), repeats=2000,
                              generator=mr.Generator(2))
    assert_unbiased(loo, "score function, leave-one-out baseline")
    # f(1) − f(0) = 0.1 is small next to f itself, so a baseline removes most of the variance.
    assert loo.total_variance() < 0.5 * plain.total_variance(), f"{loo.total_variance()} vs {plain.total_variance()}"


def test_moving_average_baseline():
    baseline = E.MovingAverageBaseline(decay=0.9)
    report = E.measure_estimator(bernoulli_estimator(baseline), bernoulli_exact(), repeats=2000,
                                 generator=mr.Generator(3))
    assert_unbiased(report, "score function, moving-average baseline")
    plain = E.measure_estimator(bernoulli_estimator(None), bernoulli_exact(), repeats=2000, generator=mr.Generator(3))
    assert report.total_variance() < 0.5 * plain.total_variance()
    assert baseline.value is not None


def test_baseline_errors():
    with pytest.raises(ValueError, match="num_samples >= 2"):
        bernoulli_estimator("leave_one_out", num_samples=1)(mr.Generator(0))
    with pytest.raises(ValueError, match="baseline must be"):
        bernoulli_estimator("mean")(mr.Generator(0))
    with pytest.raises(ValueError, match="decay"):
        E.MovingAverageBaseline(decay=1.0)


# -- categorical: score function, relaxed and straight-through ------------------------------

LOGITS = np.array([0.2, -0.4, 0.9])
WEIGHTS = np.array([1.0, -2.0, 0.5])


def categorical_exact():
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    # E[f] = Σ_k p_k w_k, so dE/dlogit_j = p_j (w_j − Σ_k p_k w_k).
    return (p * (WEIGHTS - (p * WEIGHTS).sum()),)


def test_score_function_on_categorical_indices_is_unbiased():
    logits = t64(LOGITS, True)

    def estimate(generator):
        return E.score_function_gradient(lambda l: D.Categorical(logits=l), [logits],
                                         lambda k: t64(WEIGHTS[k.data]), num_samples=4,
                                         baseline="leave_one_out", generator=generator)

    report = E.measure_estimator(estimate, categorical_exact(), repeats=1000, generator=mr.Generator(4))
    assert_unbiased(report, "score function, Categorical")


@pytest.mark.parametrize("straight_through", [False, True])
def test_relaxed_estimators_are_biased_with_lower_variance(straight_through):
    logits = t64(LOGITS, True)
    weights = t64(WEIGHTS)

    def relaxed(generator):
        return E.relaxed_gradient(lambda l: D.OneHotCategorical(logits=l), [logits],
                                  lambda z: (z * weights).sum(axis=-1), temperature=1.0, num_samples=4,
                                  straight_through=straight_through, generator=generator)

    def score(generator):
        return E.score_function_gradient(lambda l: D.OneHotCategorical(logits=l), [logits],
                                         lambda z: (z * weights).sum(axis=-1), num_samples=4, generator=generator)

    report = E.measure_estimator(relaxed, categorical_exact(), repeats=1000, generator=mr.Generator(5))
    assert_biased(report, f"relaxed (straight_through={straight_through}) at temperature 1")
    reference = E.measure_estimator(score, categorical_exact(), repeats=1000, generator=mr.Generator(5))
    assert report.total_variance() < reference.total_variance()


def test_relaxed_bernoulli_straight_through_forward_is_hard():
    seen = []

    def record(z):
        seen.append(z.data.copy())
        return z

    E.relaxed_gradient(lambda l: D.Bernoulli(logits=l), [t64(0.3, True)], record, temperature=0.5,
                       num_samples=16, straight_through=True, generator=mr.Generator(6))
    assert np.isin(seen[0], (0.0, 1.0)).all()
    with pytest.raises(TypeError, match="Bernoulli, Categorical or OneHotCategorical"):
        E.relaxed_gradient(D.Normal, [t64(0.0, True), t64(1.0, True)], record, temperature=0.5)


def test_measure_estimator_validates_inputs():
    with pytest.raises(ValueError, match="repeats must be >= 2"):
        E.measure_estimator(lambda g: (np.zeros(1),), (np.zeros(1),), repeats=1)
    with pytest.raises(ValueError, match="returned 1 gradients but exact has 2"):
        E.measure_estimator(lambda g: (np.zeros(1),), (np.zeros(1), np.zeros(1)), repeats=3)


def test_parameters_must_require_grad():
    with pytest.raises(TypeError, match="requires_grad"):
        E.reparameterization_gradient(D.Normal, [t64(0.0), t64(1.0, True)], lambda z: z)
