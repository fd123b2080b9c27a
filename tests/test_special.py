"""pinnprob.special.betainc: I_x(a, b) with derivatives in a and b, to second order, against SciPy."""

import jax
import numpy as np
import scipy.special as sp

from pinnprob.special import betainc


def _fd(f, x, h):
    """Central difference of a scalar f at x (float64, SciPy values)."""
    return (f(x + h) - f(x - h)) / (2 * h)


def test_betainc_first_and_second_derivatives_match_scipy_differences():
    a, b, x = 1.3, 0.5, 0.4
    with jax.enable_x64(True):
        grad = jax.grad(betainc, argnums=(0, 1, 2))(a, b, x)
        hess = jax.hessian(betainc, argnums=(0, 1, 2))(a, b, x)
    grad = np.array([float(g) for g in grad])
    hess = np.array([[float(hess[i][j]) for j in range(3)] for i in range(3)])
    h = 1e-4
    want = np.array([_fd(lambda s: sp.betainc(s, b, x), a, h), _fd(lambda s: sp.betainc(a, s, x), b, h),
                     _fd(lambda s: sp.betainc(a, b, s), x, h)])
    # the rule's own differences (step 1e-4 in a and b) against SciPy's: O(h²) ≈ 1e-8 apart
    np.testing.assert_allclose(grad, want, rtol=1e-6)
    # second derivatives: differences of SciPy's first differences (h = 1e-3 outside, 1e-4 inside;
    # truncation ~1e-6, rounding ~1e-16 / 1e-7 ≈ 1e-9)
    H = 1e-3
    fa = lambda s, t: _fd(lambda u: sp.betainc(u, b, t), s, h)  # noqa: E731  ∂I/∂a at (s, b, t)
    fx = lambda s, t: _fd(lambda u: sp.betainc(s, b, u), t, h)  # noqa: E731  ∂I/∂x at (s, b, t)
    np.testing.assert_allclose(hess[0, 0], _fd(lambda s: fa(s, x), a, H), rtol=1e-4)
    np.testing.assert_allclose(hess[0, 2], _fd(lambda t: fa(a, t), x, H), rtol=1e-4)
    np.testing.assert_allclose(hess[2, 2], _fd(lambda t: fx(a, t), x, H), rtol=1e-4)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-6, atol=1e-10)  # symmetric: mixed partials agree
