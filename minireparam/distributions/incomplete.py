"""Regularized incomplete gamma and beta functions, their parameter derivatives and inverses.

These are the CDFs of Gamma(a, 1) and Beta(a, b). The implicit reparameterization needs,
at a sample z, the derivative of the CDF F with respect to the shape parameters, because
dz/dθ = −(∂F/∂θ)/(∂F/∂z). Everything here is numpy in float64, vectorized over elements,
and works in log space so that samples far below the smallest float64 keep finite values
and gradients.

Method (the standard expansions, each differentiated in forward mode alongside its value):

* Gamma, x < a + 1: the series P(a, x) = x^a e^(−x) / Γ(a + 1) · Σₙ xⁿ / ((a+1)…(a+n)).
* Gamma, x >= a + 1: the continued fraction for Q(a, x) = 1 − P(a, x), evaluated with the
  modified Lentz algorithm.
* Beta: the continued fraction for I_x(a, b) when x < (a + 1)/(a + b + 2), and
  1 − I_(1−x)(b, a) otherwise, again with Lentz.

Both expansions need about √a (or √max(a, b)) terms near the mode, so the cost grows
slowly with the concentration. NOTE: no asymptotic expansion is used for very large
parameters. Beyond a few million the iteration cap (``_MAX_TERMS``) can stop before
convergence, and the result then carries a larger error.
"""
import numpy as np

from .special import digamma_array, lbeta_array, lgamma_array

_MAX_TERMS = 20000
_TOLERANCE = 4e-16  # a little above float64's epsilon, so a settled step 1 + δ can reach it
_TINY = 1e-300
_CHECK_EVERY = 8


class _LiveSet:
    """The elements of a 1-D iteration that have not converged yet.

    Each loop works only on its live elements: ``retire(done, results, *state)`` stores
    the results of the elements that converged, drops them from every state array and
    returns the shortened state, so late iterations cost only what the slowest need.
    """

    def __init__(self, size):
        self.index = np.arange(size)
        self.results = None
        self.size = size

    def retire(self, done, results, *state):
        if self.results is None:
            self.results = tuple(np.empty(self.size) for _ in results)
        if not done.any():
            return state
        for output, values in zip(self.results, results):
            output[self.index[done]] = values[done]
        keep = ~done
        self.index = self.index[keep]
        return tuple(array[keep] if np.ndim(array) else array for array in state)

    def empty(self):
        return self.index.size == 0


def _float64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(*arrays)]


# -- incomplete gamma ---------------------------------------------------------------------


def _gamma_series(a, x):
    """Return (S, dS/da) with P(a, x) = x^a e^(−x) S / Γ(a + 1), for x < a + 1."""
    live = _LiveSet(a.size)
    a, x = a.copy(), x.copy()
    term = np.ones_like(a)
    d_term = np.zeros_like(a)
    total = np.ones_like(a)
    d_total = np.zeros_like(a)
    for n in range(1, _MAX_TERMS):
        ratio = x / (a + n)
        d_term = (d_term - term / (a + n)) * ratio  # d(term·ratio)/da, with d ratio/da = −ratio/(a+n)
        term = term * ratio
        total += term
        d_total += d_term
        if n % _CHECK_EVERY == 0:
            done = (term <= _TOLERANCE * total) & (np.abs(d_term) <= _TOLERANCE * np.abs(d_total) + _TINY)
            a, x, term, d_term, total, d_total = live.retire(done, (total, d_total), a, x, term, d_term, total, d_total)
            if live.empty():
                break
    live.retire(np.ones(a.shape, dtype=bool), (total, d_total))
    return live.results


def _gamma_continued_fraction(a, x):
    """Return (h, dh/da) with Q(a, x) = x^a e^(−x) h / Γ(a), for x >= a + 1.

    h = 1 / (x + 1 − a − 1·(1 − a) / (x + 3 − a − 2·(2 − a) / (x + 5 − a − …))), run
    through the modified Lentz recurrence with every quantity's a-derivative carried along.
    """
    live = _LiveSet(a.size)
    a = a.copy()
    b = x + 1.0 - a
    d_b = -1.0
    c = np.full_like(a, 1.0 / _TINY)
    d_c = np.zeros_like(a)
    d = 1.0 / b
    d_d = 1.0 / (b * b)  # d(1/b)/da = −(db/da)/b²
    h = d.copy()
    d_h = d_d.copy()
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        d_an = float(i)
        b = b + 2.0

        denominator = an * d + b
        d_denominator = d_an * d + an * d_d + d_b
        denominator = np.where(np.abs(denominator) < _TINY, _TINY, denominator)
        c_next = b + an / c
        d_c = d_b + d_an / c - an * d_c / (c * c)
        c = np.where(np.abs(c_next) < _TINY, _TINY, c_next)

        d = 1.0 / denominator
        d_d = -d_denominator * d * d
        delta = d * c
        d_delta = d_d * c + d * d_c
        d_h = d_h * delta + h * d_delta
        h = h * delta
        if i % _CHECK_EVERY == 0:
            done = (np.abs(delta - 1.0) <= _TOLERANCE) & (np.abs(h * d_delta) <= _TOLERANCE * (np.abs(d_h) + np.abs(h)))
            a, b, c, d_c, d, d_d, h, d_h = live.retire(done, (h, d_h), a, b, c, d_c, d, d_d, h, d_h)
            if live.empty():
                break
    live.retire(np.ones(a.shape, dtype=bool), (h, d_h))
    return live.results


def gamma_cdf_parts(a, log_x):
    """Evaluate the Gamma(a, 1) CDF at x = exp(log_x) in log space, with its a-derivative.

    Args:
        a: concentrations (> 0), broadcastable with ``log_x``.
        log_x: log of the points.

    Returns:
        A dict of float64 arrays of the broadcast shape:
        ``log_p`` = log P(a, x), ``log_q`` = log(1 − P(a, x)), ``log_density_x`` =
        log(x · pdf(x)), and ``dlogx_da``: the implicit derivative d log x/da that keeps
        P(a, x) fixed, −(∂P/∂a)/(x · pdf(x)).
    """
    a, log_x = _float64(a, log_x)
    x = np.exp(np.minimum(log_x, 700.0))
    log_density_x = a * log_x - x - lgamma_array(a)
    use_series = x < a + 1.0

    log_p = np.empty_like(a)
    log_q = np.empty_like(a)
    dlogx_da = np.empty_like(a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if use_series.any():
            s_a, s_x, s_log_x = a[use_series], x[use_series], log_x[use_series]
            total, d_total = _gamma_series(s_a, s_x)
            s_log_p = log_density_x[use_series] - np.log(s_a) + np.log(total)
            log_p[use_series] = s_log_p
            log_q[use_series] = np.log1p(-np.exp(s_log_p))
            # ∂P/∂a = (x pdf / a)·((log x − ψ(a + 1))·S + dS/da), divided by −x pdf:
            dlogx_da[use_series] = -((s_log_x - digamma_array(s_a + 1.0)) * total + d_total) / s_a
        use_fraction = ~use_series
        if use_fraction.any():
            f_a, f_x, f_log_x = a[use_fraction], x[use_fraction], log_x[use_fraction]
            h, d_h = _gamma_continued_fraction(f_a, f_x)
            f_log_q = log_density_x[use_fraction] + np.log(h)
            log_q[use_fraction] = f_log_q
            log_p[use_fraction] = np.log1p(-np.exp(f_log_q))
            # ∂Q/∂a = x pdf·((log x − ψ(a))·h + dh/da), and ∂P/∂a = −∂Q/∂a:
            dlogx_da[use_fraction] = (f_log_x - digamma_array(f_a)) * h + d_h
    return {"log_p": log_p, "log_q": log_q, "log_density_x": log_density_x, "dlogx_da": dlogx_da}


def gammainc(a, x):
    """Return P(a, x), the regularized lower incomplete gamma function (the Gamma(a, 1) CDF)."""
    a, x = _float64(a, x)
    with np.errstate(divide="ignore"):
        parts = gamma_cdf_parts(a, np.log(x))
    return np.where(x > 0, np.exp(parts["log_p"]), 0.0)


def gammaincc(a, x):
    """Return Q(a, x) = 1 − P(a, x), computed directly so that small values keep their precision."""
    a, x = _float64(a, x)
    with np.errstate(divide="ignore"):
        parts = gamma_cdf_parts(a, np.log(x))
    return np.where(x > 0, np.exp(parts["log_q"]), 1.0)


def log_gammaincinv(a, u):
    """Return log x with P(a, x) = u: the Gamma(a, 1) inverse CDF in log space.

    Args:
        a: concentrations (> 0).
        u: probabilities in (0, 1), broadcastable with ``a``.

    Returns:
        A float64 array of the broadcast shape. Small a and u give very negative values
        (a = 0.01 and u = 0.5 give about −69) that exp() would round to 0.
    """
    a, u = _float64(a, u)
    shape = a.shape
    a, u = a.reshape(-1), u.reshape(-1)
    lower_tail = u <= 0.5
    log_u, log_1mu = np.log(u), np.log1p(-u)

    def residual_and_slope(log_x, index):
        parts = gamma_cdf_parts(a[index], log_x)
        lower = lower_tail[index]
        # d log P/d log x = x pdf / P and d log Q/d log x = −x pdf / Q.
        slope_p = np.exp(parts["log_density_x"] - parts["log_p"])
        slope_q = np.exp(parts["log_density_x"] - parts["log_q"])
        residual = np.where(lower, parts["log_p"] - log_u[index], log_1mu[index] - parts["log_q"])
        return residual, np.where(lower, slope_p, slope_q)

    # P(a, x) <= x^a / Γ(a + 1), so this guess is exact for small x and never above the root.
    guess = (log_u + lgamma_array(a + 1.0)) / a
    guess = np.where(lower_tail | (a < 1.0), guess, np.log(a))
    return _solve_increasing(residual_and_slope, np.clip(guess, -1e300, 700.0)).reshape(shape)


# -- incomplete beta ----------------------------------------------------------------------


def _lentz_step(coefficient, d_coefficient, state):
    """One step of the modified Lentz recurrence for a fraction of the form 1/(1 + c/(1 + …)).

    ``state`` contains (d, c, h) and their derivatives, each a list of arrays whose first
    entry is the value and whose other entries are derivatives in each direction.
    """
    d, c, h = state
    denominator = [1.0 + coefficient * d[0]]
    denominator += [dc * d[0] + coefficient * dd for dc, dd in zip(d_coefficient, d[1:])]
    c_next = [1.0 + coefficient / c[0]]
    c_next += [dc / c[0] - coefficient * dcc / (c[0] * c[0]) for dc, dcc in zip(d_coefficient, c[1:])]

    value = np.where(np.abs(denominator[0]) < _TINY, _TINY, denominator[0])
    c_value = np.where(np.abs(c_next[0]) < _TINY, _TINY, c_next[0])
    d_new = [1.0 / value] + [-dd / (value * value) for dd in denominator[1:]]
    c_new = [c_value] + c_next[1:]
    delta = [d_new[0] * c_new[0]] + [dd * c_new[0] + d_new[0] * dc for dd, dc in zip(d_new[1:], c_new[1:])]
    h_new = [h[0] * delta[0]] + [dh * delta[0] + h[0] * ddelta for dh, ddelta in zip(h[1:], delta[1:])]
    return (d_new, c_new, h_new), delta


def _beta_continued_fraction(a, b, x, derivatives=True):
    """Return (h, dh/da, dh/db) with I_x(a, b) = x^a (1 − x)^b / (a B(a, b)) · h.

    With ``derivatives=False`` only h is computed (the derivatives come back as zeros).

    The fraction converges fast for x < (a + 1)/(a + b + 2). Its coefficients are
    d_(2m) = m(b − m)x / ((a + 2m − 1)(a + 2m)) and
    d_(2m+1) = −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1)).
    """
    live = _LiveSet(a.size)
    a, b, x = a.copy(), b.copy(), x.copy()
    first = 1.0 - (a + b) * x / (a + 1.0)
    d_first_a = -x * (1.0 - b) / ((a + 1.0) ** 2)
    d_first_b = -x / (a + 1.0)
    first = np.where(np.abs(first) < _TINY, _TINY, first)
    d = [1.0 / first, -d_first_a / first**2, -d_first_b / first**2]
    c = [np.ones_like(a), np.zeros_like(a), np.zeros_like(a)]
    h = [d[0].copy(), d[1].copy(), d[2].copy()]
    width = 3 if derivatives else 1
    d, c, h = d[:width], c[:width], h[:width]
    for m in range(1, _MAX_TERMS):
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d_even = ()
        if derivatives:
            d_even = (even * (-1.0 / (a + 2 * m - 1.0) - 1.0 / (a + 2 * m)), m * x / ((a + 2 * m - 1.0) * (a + 2 * m)))
        (d, c, h), _ = _lentz_step(even, d_even, (d, c, h))

        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d_odd = ()
        if derivatives:
            d_odd = (odd * (1.0 / (a + m) + 1.0 / (a + b + m) - 1.0 / (a + 2 * m) - 1.0 / (a + 2 * m + 1.0)),
                     odd / (a + b + m))
        (d, c, h), delta = _lentz_step(odd, d_odd, (d, c, h))

        if m % _CHECK_EVERY == 0:
            done = np.abs(delta[0] - 1.0) <= _TOLERANCE
            for k in range(1, width):
                done &= np.abs(h[0] * delta[k]) <= _TOLERANCE * (np.abs(h[k]) + np.abs(h[0]))
            state = live.retire(done, h, a, b, x, *d, *c, *h)
            a, b, x = state[:3]
            d, c, h = [list(state[3 + i * width:3 + (i + 1) * width]) for i in range(3)]
            if live.empty():
                break
    live.retire(np.ones(a.shape, dtype=bool), h)
    results = live.results
    if not derivatives:
        zeros = np.zeros_like(results[0])
        results = (results[0], zeros, zeros)
    return results


def _beta_lower_tail(p, q, log_y, log_1my, derivatives=True):
    """Evaluate J = I_y(p, q) where the fraction converges, with the scaled derivatives.

    Returns (log J, g_p, g_q) where ∂J/∂p = K·g_p and ∂J/∂q = K·g_q with
    K = y^p (1 − y)^q / (p B(p, q)); g_p and g_q are meaningless without ``derivatives``.
    """
    y = np.exp(log_y)
    h, d_h_p, d_h_q = _beta_continued_fraction(p, q, y, derivatives)
    log_k = p * log_y + q * log_1my - np.log(p) - lbeta_array(p, q)
    if not derivatives:
        return log_k + np.log(h), d_h_p, d_h_q
    digamma_sum = digamma_array(p + q)
    d_log_k_p = log_y - 1.0 / p - digamma_array(p) + digamma_sum
    d_log_k_q = log_1my - digamma_array(q) + digamma_sum
    return log_k + np.log(h), d_log_k_p * h + d_h_p, d_log_k_q * h + d_h_q


def beta_cdf_parts(a, b, logit_x, derivatives=True):
    """Evaluate the Beta(a, b) CDF at x = sigmoid(logit_x), with the implicit derivatives.

    Working from the logit keeps both x and 1 − x exact even when x is within 1e-300 of
    0 or 1, which Beta(a, b) samples with a, b near 1e-3 are.

    Returns:
        A dict of float64 arrays: ``log_i`` = log I_x(a, b), ``log_1mi`` = log(1 − I_x(a, b)),
        ``log_density_logit`` = log(x (1 − x) pdf(x)) (the density of the logit), and
        ``dx_da``, ``dx_db``: the implicit derivatives −(∂I/∂θ)/pdf(x) at fixed I (only
        meaningful with ``derivatives=True``; the inverse CDF skips them to save time).
    """
    a, b, logit_x = _float64(a, b, logit_x)
    log_x = -np.logaddexp(0.0, -logit_x)
    log_1mx = -np.logaddexp(0.0, logit_x)
    x_1mx = np.exp(log_x + log_1mx)
    log_density_logit = a * log_x + b * log_1mx - lbeta_array(a, b)
    lower = np.exp(log_x) < (a + 1.0) / (a + b + 2.0)

    log_i = np.empty_like(a)
    log_1mi = np.empty_like(a)
    dx_da = np.empty_like(a)
    dx_db = np.empty_like(a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if lower.any():
            log_j, g_a, g_b = _beta_lower_tail(a[lower], b[lower], log_x[lower], log_1mx[lower], derivatives)
            log_i[lower] = log_j
            log_1mi[lower] = np.log1p(-np.exp(log_j))
            # pdf = K·a / (x (1 − x)), so −(∂I/∂θ)/pdf = −x (1 − x)·g_θ / a.
            dx_da[lower] = -x_1mx[lower] * g_a / a[lower]
            dx_db[lower] = -x_1mx[lower] * g_b / a[lower]
        upper = ~lower
        if upper.any():
            # I_x(a, b) = 1 − I_(1−x)(b, a), so the roles of a and b swap.
            log_j, g_b, g_a = _beta_lower_tail(b[upper], a[upper], log_1mx[upper], log_x[upper], derivatives)
            log_1mi[upper] = log_j
            log_i[upper] = np.log1p(-np.exp(log_j))
            dx_da[upper] = x_1mx[upper] * g_a / b[upper]
            dx_db[upper] = x_1mx[upper] * g_b / b[upper]
    return {"log_i": log_i, "log_1mi": log_1mi, "log_density_logit": log_density_logit,
            "dx_da": dx_da, "dx_db": dx_db}


def betainc(a, b, x):
    """Return I_x(a, b), the regularized incomplete beta function (the Beta(a, b) CDF)."""
    a, b, x = _float64(a, b, x)
    inside = (x > 0) & (x < 1)
    with np.errstate(divide="ignore"):
        logit_x = np.log(np.where(inside, x, 0.5)) - np.log1p(-np.where(inside, x, 0.5))
    parts = beta_cdf_parts(a, b, logit_x, derivatives=False)
    return np.where(inside, np.exp(parts["log_i"]), np.where(x >= 1, 1.0, 0.0))


def logit_betaincinv(a, b, u):
    """Return logit(x) with I_x(a, b) = u: the Beta(a, b) inverse CDF on the logit scale.

    Args:
        a, b: concentrations (> 0).
        u: probabilities in (0, 1); all three broadcast together.

    Returns:
        A float64 array; sigmoid of it is the quantile, and it stays finite where the
        quantile rounds to 0 or 1.
    """
    a, b, u = _float64(a, b, u)
    shape = a.shape
    a, b, u = a.reshape(-1), b.reshape(-1), u.reshape(-1)
    lower_tail = u <= 0.5
    log_u, log_1mu = np.log(u), np.log1p(-u)

    def residual_and_slope(logit_x, index):
        parts = beta_cdf_parts(a[index], b[index], logit_x, derivatives=False)
        lower = lower_tail[index]
        # dI/d logit = x (1 − x) pdf(x), so d log I/d logit = that / I (and −that / (1 − I)).
        slope_i = np.exp(parts["log_density_logit"] - parts["log_i"])
        slope_1mi = np.exp(parts["log_density_logit"] - parts["log_1mi"])
        residual = np.where(lower, parts["log_i"] - log_u[index], log_1mu[index] - parts["log_1mi"])
        return residual, np.where(lower, slope_i, slope_1mi)

    # Near 0, I_x ≈ x^a / (a B(a, b)); near 1, 1 − I_x ≈ (1 − x)^b / (b B(a, b)).
    log_beta = lbeta_array(a, b)
    guess_low = (log_u + np.log(a) + log_beta) / a
    guess_high = -(log_1mu + np.log(b) + log_beta) / b
    guess = np.where(lower_tail, np.minimum(guess_low, 0.0), np.maximum(guess_high, 0.0))
    return _solve_increasing(residual_and_slope, guess).reshape(shape)


# -- root finding ---------------------------------------------------------------------------


def _solve_increasing(residual_and_slope, guess, max_iterations=200):
    """Solve r(t) = 0 elementwise for an increasing r by Newton steps kept inside a bracket.

    ``residual_and_slope(t, index)`` evaluates r and r' at t for the flat elements
    ``index``, so only unsettled elements are evaluated. The bracket [low, high] around
    the root is found by doubling steps away from ``guess``. A Newton step that would leave
    it is replaced by bisection, so every element converges even where the slope is tiny
    or the function is far from linear.
    """
    low, high = _bracket(residual_and_slope, guess)
    t = np.clip(guess, low, high)
    live = np.arange(t.size)
    for _ in range(max_iterations):
        if live.size == 0:
            break
        t_live, low_live, high_live = t[live], low[live], high[live]
        residual, slope = residual_and_slope(t_live, live)
        low_live = np.where(residual < 0, t_live, low_live)
        high_live = np.where(residual > 0, t_live, high_live)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = t_live - residual / slope
        inside = (newton > low_live) & (newton < high_live)
        t_next = np.where(inside, newton, 0.5 * (low_live + high_live))
        t_next = np.where(residual == 0, t_live, t_next)
        settled = np.abs(t_next - t_live) <= 4e-16 * (1.0 + np.abs(t_live))
        t[live], low[live], high[live] = t_next, low_live, high_live
        live = live[~settled]
    return t


def _bracket(residual_and_slope, guess, max_doublings=200):
    """Return (low, high) with r(low) <= 0 <= r(high), widening by doubling steps."""
    low = guess - 1.0
    high = guess + 1.0
    width = np.ones_like(guess)
    live = np.arange(guess.size)
    for _ in range(max_doublings):
        if live.size == 0:
            break
        residual_low, _ = residual_and_slope(low[live], live)
        residual_high, _ = residual_and_slope(high[live], live)
        move_down = residual_low > 0
        move_up = residual_high < 0
        moving = move_down | move_up
        width[live] = np.where(moving, 2.0 * width[live], width[live])
        low[live] = np.where(move_down, low[live] - width[live], low[live])
        high[live] = np.where(move_up, high[live] + width[live], high[live])
        live = live[moving]
    return low, high
