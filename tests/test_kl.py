"""KL divergences: every closed form against Monte Carlo, KL(p, p) = 0, dispatch errors.

Monte Carlo comparisons pass within 5 standard errors of the mean log-ratio (false-failure
rate 5.7e-7 per comparison over random seeds; the seeds here are fixed).
"""
import math

import numpy as np
import pytest

scipy = pytest.importorskip("scipy")
from scipy import integrate, special as sp  # noqa: E402

import minireparam as mr  # noqa: E402
import minireparam.distributions as D  # noqa: E402

Z_LIMIT = 5.0


def t64(x, requires_grad=False):
    return mr.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


def _full_covariance(values):
    factor = np.asarray(values, dtype=np.float64)
    return factor @ factor.T + np.eye(factor.shape[0])


# Each pair: (make_p, p parameters, make_q, q parameters), all float64.
PAIRS = {
    "Normal": (D.Normal, [[0.3, -1.0], [0.5, 2.0]], D.Normal, [[1.0, 0.0], [1.5, 1.0]]),
    "LogNormal": (D.LogNormal, [[0.3], [0.5]], D.LogNormal, [[0.0], [0.8]]),
    "Laplace": (D.Laplace, [[0.3, -1.0], [0.5, 2.0]], D.Laplace, [[1.0, 0.0], [1.5, 1.0]]),
    "Exponential": (D.Exponential, [[0.5, 2.0]], D.Exponential, [[1.5, 0.7]]),
    "Gamma": (D.Gamma, [[0.4, 3.0], [0.5, 2.0]], D.Gamma, [[1.5, 2.0], [1.0, 3.0]]),
    "Beta": (D.Beta, [[0.4, 3.0], [2.5, 0.6]], D.Beta, [[1.5, 2.0], [1.0, 3.0]]),
    "Uniform": (D.Uniform, [[-1.0, 0.2], [0.5, 2.0]], D.Uniform, [[-2.0, 0.0], [1.0, 3.0]]),
    "Uniform-Beta": (D.Uniform, [[0.0, 0.2], [0.5, 1.0]], D.Beta, [[0.7, 2.0], [1.5, 0.8]]),
    "Kumaraswamy-Beta": (D.Kumaraswamy, [[0.6, 2.0], [1.5, 0.5]], D.Beta, [[0.7, 2.0], [1.5, 0.8]]),
    "Bernoulli": (lambda p: D.Bernoulli(probs=p), [[0.2, 0.9]], lambda p: D.Bernoulli(probs=p), [[0.5, 0.6]]),
    "Bernoulli.logits": (lambda x: D.Bernoulli(logits=x), [[0.2, -3.0]], lambda x: D.Bernoulli(logits=x), [[1.0, 0.5]]),
    "Categorical": (lambda p: D.Categorical(probs=p), [[[0.2, 0.0, 0.8], [0.1, 0.6, 0.3]]],
                    lambda x: D.Categorical(logits=x), [[[0.5, 0.1, -0.3], [0.0, 2.0, 1.0]]]),
    "MultivariateNormal": (lambda loc, c: D.MultivariateNormal(loc, covariance_matrix=c),
                           [[0.3, -1.0], _full_covariance([[0.5, 0.1], [0.3, 0.2]])],
                           lambda loc, c: D.MultivariateNormal(loc, covariance_matrix=c),
                           [[1.0, 0.0], _full_covariance([[0.2, 0.4], [-0.3, 0.9]])]),
    "MultivariateNormal.diagonal": (lambda loc, s: D.MultivariateNormal(loc, scale_diag=s), [[0.3, -1.0], [0.5, 2.0]],
                                    lambda loc, s: D.MultivariateNormal(loc, scale_diag=s), [[1.0, 0.0], [1.5, 1.0]]),
    "MultivariateNormal.mixed": (lambda loc, s: D.MultivariateNormal(loc, scale_diag=s), [[0.3, -1.0], [0.5, 2.0]],
                                 lambda loc, c: D.MultivariateNormal(loc, covariance_matrix=c),
                                 [[1.0, 0.0], _full_covariance([[0.2, 0.4], [-0.3, 0.9]])]),
    "Independent": (lambda loc, s: D.Independent(D.Normal(loc, s), 1), [[0.3, -1.0], [0.5, 2.0]],
                    lambda loc, s: D.Independent(D.Normal(loc, s), 1), [[1.0, 0.0], [1.5, 1.0]]),
}


def _build(make, parameters, requires_grad=False):
    tensors = [t64(p, requires_grad) for p in parameters]
    return make(*tensors), tensors


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_closed_form_matches_monte_carlo(name):
    make_p, p_parameters, make_q, q_parameters = PAIRS[name]
    p, _ = _build(make_p, p_parameters)
    q, _ = _build(make_q, q_parameters)
    exact = D.kl_divergence(p, q).data
    n = 100000
    x = p.sample((n,), generator=mr.Generator(0))
    log_ratio = (p.log_prob(x) - q.log_prob(x)).data
    estimate = log_ratio.mean(axis=0)
    standard_error = log_ratio.std(axis=0, ddof=1) / math.sqrt(n)
    z = np.abs(estimate - exact) / np.maximum(standard_error, 1e-12)
    assert (z < Z_LIMIT).all(), f"KL {name}: closed form {exact}, Monte Carlo {estimate} ± {standard_error}"


SELF_PAIRS = sorted(name for name in PAIRS if name != "Kumaraswamy-Beta")  # no Kumaraswamy–Kumaraswamy form


@pytest.mark.parametrize("name", SELF_PAIRS)
def test_kl_self_is_zero(name):
    make_p, p_parameters, _, _ = PAIRS[name]
    p, tensors = _build(make_p, p_parameters, requires_grad=True)
    kl = D.kl_divergence(p, p)
    # Rounding of terms of order 1 that cancel exactly: a few float64 ulps.
    np.testing.assert_allclose(kl.data, 0.0, atol=1e-12, err_msg=f"KL({name}, itself)")
    gradients = mr.grad(kl.sum(), tensors, allow_unused=True)
    for index, gradient in enumerate(gradients):
        values = np.zeros(1) if gradient is None else gradient.data
        assert not np.isnan(values).any(), f"KL({name}, itself): NaN gradient for parameter {index}"
        np.testing.assert_allclose(values, 0.0, atol=1e-10, err_msg=f"KL({name}, itself) parameter {index}")


def test_kl_of_separately_built_equal_distributions_is_zero():
    loc, scale = t64(0.4, True), t64(1e-30, True)
    kl = D.kl_divergence(D.Normal(loc, scale), D.Normal(t64(0.4), t64(1e-30)))
    assert kl.item() == 0.0
    kl.backward()
    assert loc.grad == 0.0
    assert abs(scale.grad) < 1e-10 * 1e30


def test_kumaraswamy_beta_series_matches_quadrature():
    # The truncated series with its tail term is within 1e-5 of the exact integral.
    for a, b, alpha, beta in [(0.6, 1.5, 0.7, 1.5), (2.0, 0.5, 2.0, 0.8), (1.0, 1.0, 3.0, 0.5), (4.0, 3.0, 0.5, 4.0)]:
        kl = D.kl_divergence(D.Kumaraswamy(t64(a), t64(b)), D.Beta(t64(alpha), t64(beta))).item()

        def integrand(x):
            log_p = math.log(a * b) + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x**a)
            log_q = (alpha - 1) * math.log(x) + (beta - 1) * math.log1p(-x) - sp.betaln(alpha, beta)
            return math.exp(log_p) * (log_p - log_q)

        exact = integrate.quad(integrand, 0, 1, limit=400, epsabs=1e-12)[0]
        assert abs(kl - exact) < 1e-5, f"KL(Kumaraswamy({a}, {b}) || Beta({alpha}, {beta})): {kl} vs {exact}"


def test_uniform_kl_is_infinite_outside_support():
    assert D.kl_divergence(D.Uniform(t64(0.0), t64(2.0)), D.Uniform(t64(0.0), t64(1.0))).item() == np.inf
    assert D.kl_divergence(D.Uniform(t64(-0.5), t64(0.5)), D.Beta(t64(2.0), t64(2.0))).item() == np.inf
    probabilities = D.Categorical(probs=t64([0.5, 0.5]))
    assert D.kl_divergence(probabilities, D.Categorical(probs=t64([1.0, 0.0]))).item() == np.inf


def test_unregistered_pair_names_both_types():
    with pytest.raises(NotImplementedError, match=r"\(Normal, Gamma\).*kl_divergence_mc"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Gamma(1.0, 1.0))
    relaxed = D.RelaxedOneHotCategorical(t64(0.5), logits=t64([0.0, 1.0]))
    with pytest.raises(NotImplementedError, match="RelaxedOneHotCategorical, RelaxedOneHotCategorical"):
        D.kl_divergence(relaxed, relaxed)


def test_monte_carlo_kl_is_differentiable_and_unbiased():
    loc = t64(0.5, requires_grad=True)
    p, q = D.Normal(loc, t64(1.0)), D.Normal(t64(0.0), t64(2.0))
    estimate = D.kl_divergence_mc(p, q, 200000, generator=mr.Generator(0))
    exact = D.kl_divergence(p, q)
    # The log-ratio has standard deviation below 1 here, so 5 standard errors are < 0.012.
    assert abs(estimate.item() - exact.item()) < 0.012
    estimate.backward()
    assert abs(loc.grad - loc.item() / 4.0) < 0.012, f"d KL/d loc: {loc.grad}, exact {loc.item() / 4}"
    relaxed = D.RelaxedOneHotCategorical(t64(0.5), logits=t64([0.0, 1.0]))
    other = D.RelaxedOneHotCategorical(t64(0.5), logits=t64([0.5, 0.0]))
    assert np.isfinite(D.kl_divergence_mc(relaxed, other, 1000).item())
    with pytest.warns(UserWarning, match="has no rsample"):
        D.kl_divergence_mc(D.Bernoulli(probs=t64(0.3)), D.Bernoulli(probs=t64(0.5)), 10)


def test_register_kl_picks_the_most_specific_pair():
    class MyNormal(D.Normal):
        pass

    assert D.kl_divergence(MyNormal(0.0, 1.0), D.Normal(0.0, 1.0)).item() == 0.0

    @D.register_kl(MyNormal, D.Normal)
    def constant(p, q):
        return t64(7.0)

    try:
        assert D.kl_divergence(MyNormal(0.0, 1.0), D.Normal(0.0, 1.0)).item() == 7.0
    finally:
        from minireparam.distributions import kl as kl_module
        del kl_module._KL_REGISTRY[(MyNormal, D.Normal)]
