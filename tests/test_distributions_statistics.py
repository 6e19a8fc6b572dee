"""Statistical checks of samplers: Monte Carlo gradients of expectations and goodness of fit.

Every check uses a fixed seed, so it is deterministic. The stated false-failure rates are
what a correct implementation would see over random seeds:

* Monte Carlo gradient checks pass when |estimate − exact| < 5 standard errors of the
  per-sample mean: two-sided normal tail 5.7e-7 per comparison.
* Goodness-of-fit tests compare binned sample counts with bin probabilities integrated
  from exp(log_prob) (Gauss–Legendre per bin), by Pearson's chi-square at level 1e-3:
  a false failure in 1 of 1000 seeds per distribution.
"""
import math

import numpy as np
import pytest

scipy = pytest.importorskip("scipy")
from scipy import stats  # noqa: E402

import minireparam as mr  # noqa: E402
import minireparam.distributions as D  # noqa: E402

Z_LIMIT = 5.0
SIGNIFICANCE = 1e-3


def t64(x, requires_grad=False):
    return mr.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


# -- Monte Carlo gradients of expectations ------------------------------------------------


def per_sample_gradients(make_distribution, parameter_values, function, n, seed):
    """Draw n samples, each from its own copy of the parameters, and return per-sample gradients.

    Returns one (n, *parameter_shape) array per parameter: row i is ∇_θ f(z_i).
    """
    leaves = [t64(np.broadcast_to(np.asarray(v, dtype=np.float64), (n,) + np.shape(v)).copy(), requires_grad=True)
              for v in parameter_values]
    z = make_distribution(*leaves).rsample(generator=mr.Generator(seed))
    function(z).sum().backward()
    return [leaf.grad for leaf in leaves]


def assert_mean_matches(samples, exact, what):
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    z = np.abs(mean - exact) / standard_error
    assert (z < Z_LIMIT).all(), f"{what}: estimate {mean}, exact {exact}, {z} standard errors apart"


@pytest.mark.parametrize("loc,scale", [(0.7, 1.3), (-2.0, 0.4)])
def test_normal_pathwise_gradient_of_second_moment(loc, scale):
    grad_loc, grad_scale = per_sample_gradients(D.Normal, [loc, scale], lambda z: z * z, 40000, seed=1)
    assert_mean_matches(grad_loc, 2 * loc, "d/dloc E[z^2] = 2 loc")
    assert_mean_matches(grad_scale, 2 * scale, "d/dscale E[z^2] = 2 scale")


def test_exponential_pathwise_gradient_of_mean():
    rate = 1.7
    (grad_rate,) = per_sample_gradients(D.Exponential, [rate], lambda z: z, 40000, seed=2)
    assert_mean_matches(grad_rate, -1 / rate**2, "d/drate E[z] = -1/rate^2")


@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0, 4.5])
def test_gamma_implicit_gradient_of_moments(alpha):
    rate = t64(1.0)
    (first,) = per_sample_gradients(lambda a: D.Gamma(a, rate), [alpha], lambda z: z, 40000, seed=3)
    assert_mean_matches(first, 1.0, f"Gamma({alpha}): d/dalpha E[z] = 1")
    (second,) = per_sample_gradients(lambda a: D.Gamma(a, rate), [alpha], lambda z: z * z, 40000, seed=4)
    assert_mean_matches(second, 2 * alpha + 1, f"Gamma({alpha}): d/dalpha E[z^2] = 2 alpha + 1")


@pytest.mark.parametrize("a,b", [(0.5, 2.0), (3.0, 0.7)])
def test_beta_implicit_gradient_of_mean(a, b):
    grad_a, grad_b = per_sample_gradients(D.Beta, [a, b], lambda z: z, 20000, seed=5)
    assert_mean_matches(grad_a, b / (a + b) ** 2, "d/da E[z] = b/(a+b)^2")
    assert_mean_matches(grad_b, -a / (a + b) ** 2, "d/db E[z] = -a/(a+b)^2")


def test_dirichlet_implicit_gradient_of_mean():
    alpha = np.array([0.4, 1.5, 3.0])
    total = alpha.sum()
    for i in range(3):
        (jacobian_row,) = per_sample_gradients(D.Dirichlet, [alpha], lambda z, i=i: z[..., i], 20000, seed=6 + i)
        exact = ((i == np.arange(3)) * total - alpha[i]) / total**2
        assert_mean_matches(jacobian_row, exact, f"d E[z_{i}] / d alpha_j")


# -- Gumbel-max -------------------------------------------------------------------------


def test_gumbel_max_sampling_matches_class_probabilities():
    probs = np.array([0.05, 0.15, 0.3, 0.5, 0.0])
    n = 50000
    counts = np.bincount(D.Categorical(probs=t64(probs)).sample((n,), generator=mr.Generator(0)).data, minlength=5)
    assert counts[4] == 0, "a class with probability 0 was drawn"
    _, p_value = stats.chisquare(counts[:4], probs[:4] * n)
    assert p_value > SIGNIFICANCE, f"chi-square p = {p_value:.2e}, counts {counts}"
    one_hot = D.OneHotCategorical(probs=t64(probs)).sample((n,), generator=mr.Generator(1)).data
    _, p_value = stats.chisquare(one_hot.sum(axis=0)[:4], probs[:4] * n)
    assert p_value > SIGNIFICANCE, f"one-hot chi-square p = {p_value:.2e}"


def test_bernoulli_and_poisson_sample_frequencies():
    n = 40000
    x = D.Bernoulli(probs=t64(0.3)).sample((n,), generator=mr.Generator(2)).data
    assert abs(x.mean() - 0.3) < Z_LIMIT * math.sqrt(0.21 / n)
    k = D.Poisson(t64(2.5)).sample((n,), generator=mr.Generator(3)).data
    counts = np.bincount(k.astype(int), minlength=12)[:8]
    expected = stats.poisson(2.5).pmf(np.arange(8)) * n
    tail = n - counts.sum(), n - expected.sum()
    _, p_value = stats.chisquare(np.append(counts, tail[0]), np.append(expected, tail[1]))
    assert p_value > SIGNIFICANCE, f"Poisson chi-square p = {p_value:.2e}"


# -- goodness of fit between sample and log_prob --------------------------------------------

GAUSS_NODES, GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(24)
SAMPLES = 20000
BINS = 12


def _bin_edges(coordinates):
    """Edges at the 1%..99% quantiles of a pilot draw, independent of the tested draw."""
    return np.quantile(coordinates, np.linspace(0.01, 0.99, BINS + 1))


def _gauss_points(low, high):
    middle, half = 0.5 * (high + low), 0.5 * (high - low)
    return middle[:, None] + half[:, None] * GAUSS_NODES, half[:, None] * GAUSS_WEIGHTS


def _chi_square(counts, probabilities, what):
    """Pearson's test with one extra cell for everything outside the binned region."""
    n = SAMPLES
    outside_count = n - counts.sum()
    outside_probability = 1.0 - probabilities.sum()
    observed = np.append(counts, outside_count)
    expected = np.append(probabilities, outside_probability) * n
    statistic = ((observed - expected) ** 2 / expected).sum()
    limit = stats.chi2.ppf(1 - SIGNIFICANCE, df=observed.size - 1)
    assert statistic < limit, f"{what}: chi-square {statistic:.1f} >= {limit:.1f} (level {SIGNIFICANCE})"


def check_fit_1d(d, what, to_coordinate=None, density_factor=None):
    """Bin a 1-D sample and compare with the integral of exp(log_prob) over each bin.

    ``to_coordinate`` maps samples to the binned coordinate (identity by default) and
    ``density_factor`` is the inverse map from coordinates back to values.
    """
    pilot = d.sample((SAMPLES,), generator=mr.Generator(100)).data
    values = d.sample((SAMPLES,), generator=mr.Generator(200)).data
    edges = _bin_edges(pilot)
    counts = np.histogram(values, bins=edges)[0]
    points, weights = _gauss_points(edges[:-1], edges[1:])
    density = np.exp(d.log_prob(t64(points)).data)
    _chi_square(counts, (density * weights).sum(axis=1), what)


def check_fit_2d(log_density, coordinates, what):
    """The 2-D version: a BINS × BINS grid of rectangles in ``coordinates`` (n, 2)."""
    pilot, values = coordinates
    edges_x, edges_y = _bin_edges(pilot[:, 0]), _bin_edges(pilot[:, 1])
    counts = np.histogram2d(values[:, 0], values[:, 1], bins=[edges_x, edges_y])[0]
    px, wx = _gauss_points(edges_x[:-1], edges_x[1:])
    py, wy = _gauss_points(edges_y[:-1], edges_y[1:])
    grid_x = px[:, None, :, None] * np.ones_like(py)[None, :, None, :]
    grid_y = py[None, :, None, :] * np.ones_like(px)[:, None, :, None]
    density = np.exp(log_density(grid_x, grid_y))
    probabilities = (density * wx[:, None, :, None] * wy[None, :, None, :]).sum(axis=(2, 3))
    _chi_square(counts.reshape(-1), probabilities.reshape(-1), what)


ONE_D = {
    "Normal": lambda: D.Normal(t64(0.5), t64(1.5)),
    "LogNormal": lambda: D.LogNormal(t64(0.2), t64(0.6)),
    "Laplace": lambda: D.Laplace(t64(-1.0), t64(0.7)),
    "Logistic": lambda: D.Logistic(t64(0.3), t64(2.0)),
    "Gumbel": lambda: D.Gumbel(t64(1.0), t64(0.5)),
    "Cauchy": lambda: D.Cauchy(t64(0.0), t64(1.0)),
    "Exponential": lambda: D.Exponential(t64(0.8)),
    "Uniform": lambda: D.Uniform(t64(-1.0), t64(2.0)),
    "Kumaraswamy": lambda: D.Kumaraswamy(t64(2.0), t64(0.6)),
    "Gamma": lambda: D.Gamma(t64(0.4), t64(2.0)),
    "Gamma.large": lambda: D.Gamma(t64(30.0), t64(1.0)),
    "Beta": lambda: D.Beta(t64(0.6), t64(2.5)),
    "Transformed": lambda: D.TransformedDistribution(
        D.Normal(t64(0.3), t64(0.8)), [D.SigmoidTransform(), D.AffineTransform(-1.0, 3.0)]),
    "RelaxedBernoulli": lambda: D.RelaxedBernoulli(t64(0.8), logits=t64(0.4)),
}


@pytest.mark.parametrize("name", sorted(ONE_D))
def test_samples_fit_log_prob_1d(name):
    check_fit_1d(ONE_D[name](), name)


def _sample_pair(d, transform=lambda x: x):
    return (transform(d.sample((SAMPLES,), generator=mr.Generator(100)).data),
            transform(d.sample((SAMPLES,), generator=mr.Generator(200)).data))


@pytest.mark.parametrize("form", ["full", "diagonal", "independent"])
def test_samples_fit_log_prob_multivariate_normal(form):
    loc = t64([0.5, -1.0])
    if form == "full":
        d = D.MultivariateNormal(loc, covariance_matrix=t64([[1.0, 0.6], [0.6, 2.0]]))
    elif form == "diagonal":
        d = D.MultivariateNormal(loc, scale_diag=t64([0.5, 1.5]))
    else:
        d = D.Independent(D.Normal(loc, t64([0.5, 1.5])), 1)

    def log_density(x, y):
        return d.log_prob(t64(np.stack([x, y], axis=-1))).data

    check_fit_2d(log_density, _sample_pair(d), f"MultivariateNormal ({form})")


def _stick_breaking(x):
    """Simplex points (…, 3) to the unit square: v1 = x1, v2 = x2 / (1 − x1)."""
    return np.stack([x[..., 0], x[..., 1] / (1.0 - x[..., 0])], axis=-1)


def _simplex_log_density(d):
    def log_density(v1, v2):
        # x = (v1, (1 − v1) v2, (1 − v1)(1 − v2)); the map's Jacobian determinant is 1 − v1.
        x = np.stack([v1, (1 - v1) * v2, (1 - v1) * (1 - v2)], axis=-1)
        return d.log_prob(t64(x)).data + np.log1p(-v1)

    return log_density


@pytest.mark.parametrize("name", ["Dirichlet", "RelaxedOneHotCategorical"])
def test_samples_fit_log_prob_on_simplex(name):
    if name == "Dirichlet":
        d = D.Dirichlet(t64([1.5, 0.7, 2.5]), validate_args=False)
    else:
        d = D.RelaxedOneHotCategorical(t64(1.3), logits=t64([0.2, -0.5, 0.8]), validate_args=False)
    check_fit_2d(_simplex_log_density(d), _sample_pair(d, _stick_breaking), name)


def test_goodness_of_fit_detects_a_wrong_log_prob():
    class ShiftedLogProb(D.Normal):
        def log_prob(self, value):
            return super().log_prob(value - 0.05)

    with pytest.raises(AssertionError, match="chi-square"):
        check_fit_1d(ShiftedLogProb(t64(0.0), t64(1.0)), "shifted Normal")
