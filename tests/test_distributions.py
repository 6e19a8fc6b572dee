"""Distributions against scipy.stats, their pathwise gradients, validation and edge numerics.

Statistical tests (Monte Carlo gradients, goodness of fit) live in
test_distributions_statistics.py; KL divergences in test_kl.py.
"""
import math

import numpy as np
import pytest

scipy = pytest.importorskip("scipy")
from scipy import integrate, special as sp, stats  # noqa: E402

import minireparam as mr  # noqa: E402
import minireparam.distributions as D  # noqa: E402
from minireparam.distributions import incomplete, special  # noqa: E402
from minireparam.errors import ShapeError  # noqa: E402


def t64(x, requires_grad=False):
    return mr.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


# Float64 closed forms agree with scipy to rounding; 1e-9 relative leaves room for the
# log/exp round trips of both libraries without hiding a wrong term.
RTOL = 1e-9
ATOL = 1e-10


def assert_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    actual = actual.data if isinstance(actual, mr.Tensor) else np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# -- special functions --------------------------------------------------------------------


def test_special_functions_match_scipy():
    x = np.concatenate([np.logspace(-8, -1, 40), np.linspace(0.1, 40, 200), np.logspace(1.7, 8, 20)])
    # lgamma crosses 0 at 1 and 2, so its error is measured against max(1, |value|).
    error = np.abs(special.lgamma_array(x) - sp.gammaln(x)) / np.maximum(1.0, np.abs(sp.gammaln(x)))
    assert error.max() < 1e-13, f"lgamma max error {error.max():.2e}"
    assert_close(special.digamma_array(x), sp.digamma(x), "digamma", rtol=1e-13, atol=1e-13)
    for n in (1, 2, 3):
        assert_close(special.polygamma_array(n, x), sp.polygamma(n, x), f"polygamma({n})", rtol=1e-13)


def test_special_function_edges():
    assert special.lgamma_array(np.array(0.0)) == np.inf
    assert special.digamma_array(np.array(0.0)) == -np.inf
    assert np.isnan(special.lgamma_array(np.array(-1.5)))
    assert special.lgamma_array(np.array([2.0], dtype=np.float32)).dtype == np.float32


def test_special_ops_second_derivatives():
    x = t64([0.3, 1.7, 6.0], requires_grad=True)
    for function in (D.lgamma, D.digamma, lambda v: D.polygamma(1, v)):
        assert mr.gradgradcheck(function, [x])


def test_incomplete_gamma_and_beta_match_scipy():
    rng = np.random.default_rng(0)
    a = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), 400))
    x = sp.gammaincinv(a, rng.uniform(0.01, 0.99, 400))
    # The series and continued fraction converge to about 1e-13 absolute after summation.
    assert_close(incomplete.gammainc(a, x), sp.gammainc(a, x), "gammainc", atol=1e-12)
    assert_close(incomplete.gammaincc(a, x), sp.gammaincc(a, x), "gammaincc", rtol=1e-10, atol=1e-300)
    a, b = np.exp(rng.uniform(np.log(0.01), np.log(100), (2, 400)))
    x = rng.uniform(0.001, 0.999, 400)
    assert_close(incomplete.betainc(a, b, x), sp.betainc(a, b, x), "betainc", atol=1e-12)


def test_inverse_cdfs_match_scipy():
    rng = np.random.default_rng(1)
    a = np.exp(rng.uniform(np.log(0.05), np.log(200), 300))
    u = rng.uniform(0.01, 0.99, 300)
    # Newton stops at a step of 4e-16 relative in log x; scipy's own inverse is good to ~1e-12.
    assert_close(np.exp(incomplete.log_gammaincinv(a, u)), sp.gammaincinv(a, u), "gammaincinv", rtol=1e-10)
    a, b = np.exp(rng.uniform(np.log(0.3), np.log(30), (2, 300)))
    x = sp.expit(incomplete.logit_betaincinv(a, b, u))
    assert_close(x, sp.betaincinv(a, b, u), "betaincinv", rtol=1e-8)


def test_gamma_inverse_for_tiny_concentration_is_finite():
    log_x = incomplete.log_gammaincinv(np.array([1e-3, 1e-3]), np.array([0.2, 0.9]))
    assert np.isfinite(log_x).all(), f"log-quantiles {log_x}"
    assert (log_x < -700).any(), f"log-quantiles {log_x}"


# -- log_prob, entropy, mean, variance against scipy.stats --------------------------------


def _random_parameters(rng, low, high, shape=(4,)):
    return rng.uniform(low, high, shape)


SCIPY_CASES = {
    "Normal": (lambda p: D.Normal(t64(p[0]), t64(p[1])), lambda p: stats.norm(p[0], p[1]), [(-2, 2), (0.2, 3)]),
    "LogNormal": (lambda p: D.LogNormal(t64(p[0]), t64(p[1])), lambda p: stats.lognorm(s=p[1], scale=np.exp(p[0])),
                  [(-1, 1), (0.2, 1.2)]),
    "Laplace": (lambda p: D.Laplace(t64(p[0]), t64(p[1])), lambda p: stats.laplace(p[0], p[1]), [(-2, 2), (0.2, 3)]),
    "Logistic": (lambda p: D.Logistic(t64(p[0]), t64(p[1])), lambda p: stats.logistic(p[0], p[1]), [(-2, 2), (0.2, 3)]),
    "Gumbel": (lambda p: D.Gumbel(t64(p[0]), t64(p[1])), lambda p: stats.gumbel_r(p[0], p[1]), [(-2, 2), (0.2, 3)]),
    "Exponential": (lambda p: D.Exponential(t64(p[0])), lambda p: stats.expon(scale=1 / p[0]), [(0.2, 4)]),
    "Uniform": (lambda p: D.Uniform(t64(p[0]), t64(p[1])), lambda p: stats.uniform(p[0], p[1] - p[0]), [(-3, -1), (1, 3)]),
    "Gamma": (lambda p: D.Gamma(t64(p[0]), t64(p[1])), lambda p: stats.gamma(p[0], scale=1 / p[1]), [(0.1, 8), (0.3, 3)]),
    "Beta": (lambda p: D.Beta(t64(p[0]), t64(p[1])), lambda p: stats.beta(p[0], p[1]), [(0.1, 8), (0.1, 8)]),
}


@pytest.mark.parametrize("name", sorted(SCIPY_CASES))
def test_moments_and_log_prob_match_scipy(name):
    make, reference, ranges = SCIPY_CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    parameters = [_random_parameters(rng, low, high) for low, high in ranges]
    d, oracle = make(parameters), reference(parameters)
    values = oracle.rvs(size=(5, 4), random_state=rng)
    assert_close(d.log_prob(t64(values)), oracle.logpdf(values), f"{name}.log_prob")
    assert_close(d.entropy(), oracle.entropy(), f"{name}.entropy")
    assert_close(d.mean, oracle.mean(), f"{name}.mean")
    assert_close(d.variance, oracle.var(), f"{name}.variance")
    assert_close(d.stddev, oracle.std(), f"{name}.stddev")
    assert d.log_prob(t64(values)).shape == (5, 4)


def test_cauchy_matches_scipy():
    loc, scale = np.array([0.5, -1.0]), np.array([0.3, 2.0])
    d = D.Cauchy(t64(loc), t64(scale))
    x = np.array([[0.1, 3.0], [-4.0, 0.0]])
    assert_close(d.log_prob(t64(x)), stats.cauchy(loc, scale).logpdf(x), "Cauchy.log_prob")
    assert_close(d.entropy(), stats.cauchy(loc, scale).entropy(), "Cauchy.entropy")
    assert np.isnan(d.mean.data).all()
    assert np.isinf(d.variance.data).all()


def test_dirichlet_matches_scipy():
    alpha = np.array([[0.5, 2.0, 3.5], [1.2, 0.8, 5.0]])
    d = D.Dirichlet(t64(alpha))
    x = np.stack([stats.dirichlet(a).rvs(3, random_state=0) for a in alpha], axis=1)  # (3, 2, 3)
    expected = np.array([[stats.dirichlet(alpha[j]).logpdf(x[i, j]) for j in range(2)] for i in range(3)])
    assert_close(d.log_prob(t64(x)), expected, "Dirichlet.log_prob")
    assert_close(d.entropy(), [stats.dirichlet(a).entropy() for a in alpha], "Dirichlet.entropy")
    assert_close(d.mean, [stats.dirichlet(a).mean() for a in alpha], "Dirichlet.mean")
    assert_close(d.variance, [stats.dirichlet(a).var() for a in alpha], "Dirichlet.variance")


@pytest.mark.parametrize("form", ["covariance_matrix", "scale_tril", "precision_matrix", "scale_diag"])
def test_multivariate_normal_matches_scipy(form):
    rng = np.random.default_rng(3)
    loc = rng.normal(size=3)
    if form == "scale_diag":
        scale = rng.uniform(0.5, 2.0, 3)
        covariance, argument = np.diag(scale**2), scale
    else:
        factor = rng.normal(size=(3, 3))
        covariance = factor @ factor.T + np.eye(3)
        argument = {"covariance_matrix": covariance, "scale_tril": np.linalg.cholesky(covariance),
                    "precision_matrix": np.linalg.inv(covariance)}[form]
    d = D.MultivariateNormal(t64(loc), **{form: t64(argument)})
    oracle = stats.multivariate_normal(loc, covariance)
    x = oracle.rvs(size=5, random_state=rng)
    assert_close(d.log_prob(t64(x)), oracle.logpdf(x), "MultivariateNormal.log_prob", rtol=1e-8)
    assert_close(d.entropy(), oracle.entropy(), "MultivariateNormal.entropy", rtol=1e-8)
    assert_close(d.variance, np.diag(covariance), "MultivariateNormal.variance", rtol=1e-8)
    assert_close(d.covariance_matrix, covariance, "MultivariateNormal.covariance_matrix", rtol=1e-8)
    assert d.batch_shape == ()
    assert d.event_shape == (3,)


def test_discrete_log_prob_matches_scipy():
    p = np.array([0.0, 0.3, 1.0])
    d = D.Bernoulli(probs=t64(p))
    x = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert_close(d.log_prob(t64(x)), stats.bernoulli(p).logpmf(x), "Bernoulli.log_prob")
    assert_close(d.entropy(), stats.bernoulli(p).entropy(), "Bernoulli.entropy")
    logits = np.array([-1.0, 0.5, 3.0])
    d = D.Bernoulli(logits=t64(logits))
    assert_close(d.log_prob(t64(x)), stats.bernoulli(sp.expit(logits)).logpmf(x), "Bernoulli(logits).log_prob")
    rate = np.array([0.5, 3.0, 0.0])
    k = np.array([[0.0, 2.0, 0.0], [4.0, 1.0, 0.0]])
    assert_close(D.Poisson(t64(rate)).log_prob(t64(k)), stats.poisson(rate).logpmf(k), "Poisson.log_prob")
    probs = np.array([[0.2, 0.0, 0.8], [0.1, 0.6, 0.3]])
    d = D.Categorical(probs=t64(probs))
    assert_close(d.log_prob(mr.tensor(np.array([[0, 2], [2, 1]]))), np.log([[0.2, 0.3], [0.8, 0.6]]), "Categorical")
    assert_close(d.entropy(), [stats.entropy(row) for row in probs], "Categorical.entropy")
    one_hot = D.OneHotCategorical(probs=t64(probs))
    assert_close(one_hot.log_prob(t64(np.eye(3)[[2, 1]])), np.log([0.8, 0.6]), "OneHotCategorical")


def test_kumaraswamy_against_numerical_integration():
    a, b = 2.5, 0.7
    d = D.Kumaraswamy(t64(a), t64(b))

    def density(x):
        return a * b * x ** (a - 1) * (1 - x**a) ** (b - 1)

    def integral(function):
        return integrate.quad(function, 0, 1, limit=200)[0]

    mean = integral(lambda x: x * density(x))
    second = integral(lambda x: x * x * density(x))
    entropy = -integral(lambda x: density(x) * np.log(density(x)))
    x = np.array([0.1, 0.5, 0.95])
    # quad reaches about 1e-10 on these smooth integrands with an integrable endpoint singularity.
    assert_close(d.log_prob(t64(x)), np.log(density(x)), "Kumaraswamy.log_prob")
    assert_close(d.mean, mean, "Kumaraswamy.mean", rtol=1e-8)
    assert_close(d.variance, second - mean**2, "Kumaraswamy.variance", rtol=1e-8)
    assert_close(d.entropy(), entropy, "Kumaraswamy.entropy", rtol=1e-7)


def test_relaxed_bernoulli_closed_forms():
    logits, temperature = np.array([-1.0, 0.0, 2.0]), np.array([0.5, 1.0, 2.0])
    d = D.RelaxedBernoulli(t64(temperature), logits=t64(logits))
    # P(X > 1/2) = P(logits + L > 0) = sigmoid(logits) exactly; the median of logit(X) is logits/τ.
    x = d.sample((40000,), generator=mr.Generator(0)).data
    above = (x > 0.5).mean(axis=0)
    standard_error = np.sqrt(sp.expit(logits) * (1 - sp.expit(logits)) / 40000)
    assert (np.abs(above - sp.expit(logits)) < 5 * standard_error).all(), f"P(X > 1/2) {above}"
    # The density of y = logit(x) is τ·logistic_pdf(τy − logits), so log p(x) adds −log(x(1 − x)).
    y = np.array([[-0.3, 0.2, 1.5]])
    x = sp.expit(y)
    expected = np.log(temperature) + stats.logistic.logpdf(temperature * y - logits) - np.log(x * (1 - x))
    assert_close(d.log_prob(t64(x)), expected, "RelaxedBernoulli.log_prob", rtol=1e-8)


def test_relaxed_one_hot_argmax_is_categorical():
    probs = np.array([0.1, 0.2, 0.7])
    d = D.RelaxedOneHotCategorical(t64(2.0), probs=t64(probs))
    x = d.sample((30000,), generator=mr.Generator(1)).data
    counts = np.bincount(x.argmax(axis=-1), minlength=3)
    statistic, p_value = stats.chisquare(counts, probs * 30000)
    # argmax of softmax((l + G)/τ) is argmax(l + G), an exact Categorical draw for any τ.
    assert p_value > 1e-3, f"chi-square p = {p_value:.2e}, counts {counts}"


# -- shapes and randomness ----------------------------------------------------------------


def test_shapes_follow_sample_batch_event():
    d = D.Normal(t64(np.zeros((2, 3))), 1.0)
    assert d.batch_shape == (2, 3)
    assert d.event_shape == ()
    assert d.rsample((4, 5)).shape == (4, 5, 2, 3)
    assert d.log_prob(d.sample((4,))).shape == (4, 2, 3)
    m = D.Independent(d, 1)
    assert m.batch_shape == (2,)
    assert m.event_shape == (3,)
    assert m.log_prob(m.sample((4,))).shape == (4, 2)
    dirichlet = D.Dirichlet(t64(np.ones((2, 4))))
    assert dirichlet.sample((5,)).shape == (5, 2, 4)
    assert dirichlet.log_prob(dirichlet.sample((5,))).shape == (5, 2)
    relaxed = D.RelaxedOneHotCategorical(t64([0.5, 1.0]), logits=t64(np.zeros((2, 3))))
    assert relaxed.rsample((7,)).shape == (7, 2, 3)
    assert D.Categorical(logits=t64(np.zeros((2, 3)))).sample((7,)).shape == (7, 2)
    assert D.OneHotCategorical(logits=t64(np.zeros((2, 3)))).sample((7,)).shape == (7, 2, 3)


def test_same_seed_reproduces_samples():
    d = D.Gamma(t64([0.3, 2.0]), 1.0)
    first = d.sample((10,), generator=mr.Generator(7)).data
    again = d.sample((10,), generator=mr.Generator(7)).data
    np.testing.assert_array_equal(first, again)
    children = mr.Generator(7).spawn(2)
    assert not np.array_equal(d.sample((10,), generator=children[0]).data, d.sample((10,), generator=children[1]).data)
    mr.manual_seed(3)
    from_default = D.Normal(0.0, 1.0).sample((5,)).data
    mr.manual_seed(3)
    np.testing.assert_array_equal(from_default, D.Normal(0.0, 1.0).sample((5,)).data)


def test_float32_parameters_give_float32_samples():
    d = D.Normal(mr.tensor(np.zeros(3, dtype=np.float32)), 1.0)
    assert d.rsample((2,)).dtype == np.float32
    assert d.log_prob(d.sample()).dtype == np.float32
    assert D.Beta(0.5, 0.5).rsample((3,)).dtype == np.float32
    assert D.Normal(t64(0.0), 1.0).rsample().dtype == np.float64


# -- validation ---------------------------------------------------------------------------


def test_invalid_parameters_name_the_parameter_and_values():
    with pytest.raises(ValueError, match=r"Normal: parameter 'scale' must be > 0, got -1\.0 at \(1,\)"):
        D.Normal(t64([0.0, 0.0]), t64([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"Bernoulli: parameter 'probs' must be in \[0, 1\], got 1\.5"):
        D.Bernoulli(probs=t64(1.5))
    with pytest.raises(ValueError, match="Gamma: parameter 'concentration'"):
        D.Gamma(t64(0.0), 1.0)
    with pytest.raises(ValueError, match="Uniform: parameter 'high - low'"):
        D.Uniform(t64(2.0), t64(1.0))
    with pytest.raises(ValueError, match="MultivariateNormal: parameter 'covariance_matrix'"):
        D.MultivariateNormal(t64(np.zeros(2)), covariance_matrix=t64([[1.0, 2.0], [2.0, 1.0]]))
    for relaxed in (lambda t: D.RelaxedBernoulli(t, logits=t64(0.0)),
                    lambda t: D.RelaxedOneHotCategorical(t, logits=t64([0.0, 1.0]))):
        with pytest.raises(ValueError, match="parameter 'temperature' must be > 0, got 0.0"):
            relaxed(t64(0.0))
        with pytest.raises(ValueError, match="temperature"):
            relaxed(t64(-1.0))


def test_mismatched_shapes_raise_shape_error():
    with pytest.raises(ShapeError, match=r"loc \(3,\), scale \(2,\)"):
        D.Normal(t64(np.zeros(3)), t64(np.ones(2)))
    with pytest.raises(ShapeError, match="scale_tril must have shape"):
        D.MultivariateNormal(t64(np.zeros(3)), scale_tril=t64(np.eye(2)))


def test_validate_args_false_skips_checks():
    d = D.Normal(t64(0.0), t64(-1.0), validate_args=False)
    assert np.isnan(d.log_prob(t64(0.0)).data)


def test_value_outside_support_raises():
    with pytest.raises(ValueError, match=r"Exponential.log_prob: the value must be in the support"):
        D.Exponential(t64(1.0)).log_prob(t64(-1.0))
    with pytest.raises(ValueError, match="probability vector"):
        D.Dirichlet(t64([1.0, 1.0])).log_prob(t64([0.5, 0.6]))


def test_rsample_without_reparameterization_points_to_score_function():
    for d in (D.Bernoulli(probs=t64(0.3)), D.Categorical(logits=t64([0.0, 1.0])), D.Poisson(t64(2.0))):
        with pytest.raises(NotImplementedError, match="score function"):
            d.rsample()


# -- numerics at the edges ----------------------------------------------------------------


def test_normal_tiny_scale_float32_log_prob_is_finite():
    d = D.Normal(mr.tensor(np.float32(0.0)), mr.tensor(np.float32(1e-30)))
    value = d.log_prob(mr.tensor(np.float32(0.0)))
    assert value.dtype == np.float32
    np.testing.assert_allclose(value.data, -math.log(1e-30) - 0.5 * math.log(2 * math.pi), rtol=1e-6)


def test_beta_tiny_concentrations_sample_near_bernoulli():
    n = 20000
    for dtype in (np.float64, np.float32):
        d = D.Beta(mr.tensor(np.array(1e-3, dtype=dtype)), mr.tensor(np.array(1e-3, dtype=dtype)))
        x = d.sample((n,), generator=mr.Generator(11)).data
        assert not np.isnan(x).any(), f"{dtype}: NaN samples"
        low = (x < 0.5).mean()
        # Each side has exactly half the mass; 5 standard errors of a binomial proportion.
        assert abs(low - 0.5) < 5 * math.sqrt(0.25 / n), f"{dtype}: {low:.4f} of samples below 1/2"
        middle = np.abs(x - 0.5) < 0.01
        expected = stats.beta(1e-3, 1e-3).cdf(0.51) - stats.beta(1e-3, 1e-3).cdf(0.49)  # about 4e-5
        assert middle.sum() <= n * expected + 5 * math.sqrt(n * expected) + 1, f"{dtype}: spike at 0.5"
        interior = ((x > 0.01) & (x < 0.99)).mean()
        p_interior = stats.beta(1e-3, 1e-3).cdf(0.99) - stats.beta(1e-3, 1e-3).cdf(0.01)
        assert abs(interior - p_interior) < 5 * math.sqrt(p_interior / n) + 1e-4, f"{dtype}: interior mass {interior}"


def test_beta_tiny_concentration_gradients_are_finite():
    a = t64(1e-3, requires_grad=True)
    b = t64(1e-3, requires_grad=True)
    x = D.Beta(a, b).rsample((2000,), generator=mr.Generator(2))
    x.sum().backward()
    assert np.isfinite(a.grad), f"grads {a.grad}, {b.grad}"
    assert np.isfinite(b.grad), f"grads {a.grad}, {b.grad}"


def test_gamma_tiny_concentration_samples_are_finite():
    alpha = t64(0.01, requires_grad=True)
    z = D.Gamma(alpha, 1.0).rsample((5000,), generator=mr.Generator(4))
    assert np.isfinite(z.data).all()
    assert (z.data > 0).all()
    z.sum().backward()
    assert np.isfinite(alpha.grad)


@pytest.mark.parametrize("kind", ["bernoulli", "one_hot", "one_hot_hard"])
def test_tiny_temperature_gives_one_hot_and_zero_gradients(kind):
    temperature = t64(1e-8, requires_grad=True)
    if kind == "bernoulli":
        logits = t64([0.3, -1.0, 2.0], requires_grad=True)
        d = D.RelaxedBernoulli(temperature, logits=logits)
    else:
        logits = t64([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
        d = D.RelaxedOneHotCategorical(temperature, logits=logits, hard=kind == "one_hot_hard")
    x = d.rsample((50,), generator=mr.Generator(5))
    if kind == "bernoulli":
        assert np.isin(x.data, (0.0, 1.0)).all()
    else:
        assert np.isin(x.data, (0.0, 1.0)).all()
        assert (x.data.sum(axis=-1) == 1).all()
    weights = np.random.default_rng(0).normal(size=x.shape)
    (x * weights).sum().backward()
    assert np.isfinite(logits.grad).all()
    assert np.isfinite(temperature.grad).all()
    if kind != "one_hot_hard":  # straight-through passes the (zero) relaxed gradient too
        assert (logits.grad == 0).all(), f"{logits.grad}, {temperature.grad}"
        assert temperature.grad == 0, f"{logits.grad}, {temperature.grad}"
    assert np.isfinite(d.log_prob(x.detach()).data).all()


def test_straight_through_hard_forward_soft_backward():
    logits = t64([0.2, 0.5, -0.3], requires_grad=True)
    hard = D.RelaxedOneHotCategorical(t64(0.7), logits=logits, hard=True)
    soft = D.RelaxedOneHotCategorical(t64(0.7), logits=logits)
    noise = hard.sample_noise((4,), generator=mr.Generator(0))
    weights = t64(np.arange(12.0).reshape(4, 3))
    y_hard = hard.rsample_from_noise(noise)
    assert set(np.unique(y_hard.data)) == {0.0, 1.0}
    assert (y_hard.data.sum(-1) == 1).all()
    grad_hard = mr.grad((y_hard * weights).sum(), [logits])[0].data
    grad_soft = mr.grad((soft.rsample_from_noise(noise) * weights).sum(), [logits])[0].data
    np.testing.assert_array_equal(grad_hard, grad_soft)


def test_x_log_x_at_zero_is_zero():
    d = D.Bernoulli(probs=t64([0.0, 1.0], requires_grad=True))
    np.testing.assert_array_equal(d.entropy().data, [0.0, 0.0])
    assert_close(D.Dirichlet(t64([1.0, 2.0])).log_prob(t64([0.0, 1.0])), math.log(2.0), "Dirichlet at a vertex")


# -- stochastic gradcheck -----------------------------------------------------------------

GRADCHECK_CASES = {
    "Normal": (D.Normal, [[0.3, -1.0], [0.5, 2.0]]),
    "LogNormal": (D.LogNormal, [[0.3, -1.0], [0.5, 1.2]]),
    "Laplace": (D.Laplace, [[0.3, -1.0], [0.5, 2.0]]),
    "Logistic": (D.Logistic, [[0.3, -1.0], [0.5, 2.0]]),
    "Gumbel": (D.Gumbel, [[0.3, -1.0], [0.5, 2.0]]),
    "Cauchy": (D.Cauchy, [[0.3, -1.0], [0.5, 2.0]]),
    "Exponential": (D.Exponential, [[0.5, 2.0]]),
    "Uniform": (D.Uniform, [[-1.0, 0.2], [0.5, 2.0]]),
    "Kumaraswamy": (D.Kumaraswamy, [[0.7, 2.0], [0.5, 3.0]]),
    "Gamma": (D.Gamma, [[0.3, 4.0], [0.5, 2.0]]),
    "Beta": (D.Beta, [[0.4, 3.0], [2.5, 0.6]]),
    "Dirichlet": (D.Dirichlet, [[[0.4, 3.0, 1.0]]]),
    "MultivariateNormal": (lambda loc, f: D.MultivariateNormal(loc, scale_tril=f * np.tri(2) + np.eye(2)),
                           [[0.3, -1.0], [[0.5, 0.0], [0.4, 0.2]]]),
    "MultivariateNormal.diag": (lambda loc, s: D.MultivariateNormal(loc, scale_diag=s), [[0.3, -1.0], [0.5, 2.0]]),
    "Independent": (lambda loc, s: D.Independent(D.Normal(loc, s), 1), [[0.3, -1.0], [0.5, 2.0]]),
    "Transformed": (lambda loc, s: D.TransformedDistribution(D.Normal(loc, s), [D.SigmoidTransform(), D.AffineTransform(-1.0, 3.0)]),
                    [[0.3, -1.0], [0.5, 2.0]]),
    "RelaxedBernoulli": (lambda t, logits: D.RelaxedBernoulli(t, logits=logits), [[0.5, 2.0], [0.3, -1.0]]),
    "RelaxedOneHotCategorical": (lambda t, logits: D.RelaxedOneHotCategorical(t, logits=logits),
                                 [[0.7], [[0.3, -1.0, 0.5]]]),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK_CASES))
def test_gradcheck_rsample_every_parameter(name):
    factory, parameters = GRADCHECK_CASES[name]
    assert D.gradcheck_rsample(factory, parameters, sample_shape=(3,), generator=mr.Generator(0))


def test_gradcheck_rsample_catches_a_wrong_gradient():
    class WrongNormal(D.Normal):
        def rsample_from_noise(self, noise):
            z = super().rsample_from_noise(noise)
            return z + (self.scale - self.scale.detach()) * 0.5  # value unchanged, gradient off by 0.5

    with pytest.raises(mr.GradcheckError, match="rsample_from_noise"):
        D.gradcheck_rsample(WrongNormal, [[0.0], [1.0]], check_log_prob=False)


def test_gamma_implicit_gradient_matches_scipy_inverse():
    rng = np.random.default_rng(8)
    alpha_values = np.exp(rng.uniform(np.log(0.05), np.log(50.0), 60))
    u = rng.uniform(0.01, 0.99, 60)
    alpha = t64(alpha_values, requires_grad=True)
    z = D.Gamma(alpha, 1.0).rsample_from_noise(u)
    z.sum().backward()
    step = 1e-6 * alpha_values
    numeric = (sp.gammaincinv(alpha_values + step, u) - sp.gammaincinv(alpha_values - step, u)) / (2 * step)
    # Central differences with a relative step of 1e-6 are good to about 1e-8 relative here.
    assert_close(alpha.grad, numeric, "dz/dalpha vs gammaincinv", rtol=1e-6, atol=1e-12)


def test_beta_implicit_gradient_matches_scipy_inverse():
    rng = np.random.default_rng(9)
    a_values, b_values = np.exp(rng.uniform(np.log(0.3), np.log(20.0), (2, 60)))
    u = rng.uniform(0.05, 0.95, 60)
    a, b = t64(a_values, requires_grad=True), t64(b_values, requires_grad=True)
    x = D.Beta(a, b).rsample_from_noise(u)
    x.sum().backward()
    step_a, step_b = 1e-6 * a_values, 1e-6 * b_values
    numeric_a = (sp.betaincinv(a_values + step_a, b_values, u) - sp.betaincinv(a_values - step_a, b_values, u)) / (2 * step_a)
    numeric_b = (sp.betaincinv(a_values, b_values + step_b, u) - sp.betaincinv(a_values, b_values - step_b, u)) / (2 * step_b)
    # scipy's betaincinv is accurate to ~1e-13, so the central difference carries ~1e-7 relative error.
    assert_close(a.grad, numeric_a, "dx/da vs betaincinv", rtol=1e-5, atol=1e-10)
    assert_close(b.grad, numeric_b, "dx/db vs betaincinv", rtol=1e-5, atol=1e-10)


def test_gamma_sampler_and_inverse_cdf_agree():
    # rsample draws by rejection, rsample_from_noise by the inverse CDF; at the same value
    # both must attach the same implicit gradient.
    alpha = t64(1.7, requires_grad=True)
    z = D.Gamma(alpha, 1.0).rsample((5,), generator=mr.Generator(3))
    gradient = mr.grad(z.sum(), [alpha])[0].data
    u = sp.gammainc(1.7, z.data)
    alpha_again = t64(1.7, requires_grad=True)
    z_again = D.Gamma(alpha_again, 1.0).rsample_from_noise(u)
    assert_close(z_again, z.data, "same sample", rtol=1e-10)
    assert_close(mr.grad(z_again.sum(), [alpha_again])[0], gradient, "same gradient", rtol=1e-8)


@pytest.mark.parametrize("name", ["Dirichlet", "RelaxedOneHotCategorical", "MultivariateNormal"])
def test_gradcheck_under_each_backend(name, backend_name):
    # These samplers go through the backend's softmax or matmul kernels.
    factory, parameters = GRADCHECK_CASES[name]
    assert D.gradcheck_rsample(factory, parameters, sample_shape=(2,), generator=mr.Generator(1))
