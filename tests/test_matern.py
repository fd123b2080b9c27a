import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gamma

from pinnprob.spde import (
    MaternSPDE,
    alpha_from_nu,
    from_operator_params,
    kappa_from_range,
    nu_from_alpha,
    range_from_kappa,
    sigma_from_tau,
    tau_from_sigma,
    to_operator_params,
)
from pinnprob.domain import Box


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("nu", [0.3, 0.5, 1.0, 1.5, 2.5])
def test_round_trip_user_to_operator(d, nu):
    rho, sigma = 0.37, 1.7
    kappa, tau, alpha = to_operator_params(rho, sigma, nu, d)
    r2, s2, n2 = from_operator_params(kappa, tau, alpha, d)
    np.testing.assert_allclose([r2, s2, n2], [rho, sigma, nu], rtol=1e-5)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_marginal_variance_formula_independent(d):
    # σ² = Γ(ν) / (Γ(ν + d/2) (4π)^{d/2} κ^{2ν} τ²), written out with scipy
    nu, kappa, tau = 1.3, 4.2, 0.8
    expect = math.sqrt(gamma(nu) / (gamma(nu + d / 2) * (4 * math.pi) ** (d / 2) * kappa ** (2 * nu) * tau**2))
    np.testing.assert_allclose(sigma_from_tau(tau, kappa, nu, d), expect, rtol=1e-5)
    np.testing.assert_allclose(tau_from_sigma(expect, kappa, nu, d), tau, rtol=1e-5)


def test_simple_conversions_and_broadcasting():
    assert float(alpha_from_nu(1.0, 2)) == 2.0
    assert float(nu_from_alpha(2.0, 2)) == 1.0
    np.testing.assert_allclose(kappa_from_range(0.5, 1.5), math.sqrt(12.0) / 0.5, rtol=1e-6)
    r = jnp.array([0.1, 0.2, 0.4])
    np.testing.assert_allclose(range_from_kappa(kappa_from_range(r, 2.0), 2.0), r, rtol=1e-6)


def test_conversions_differentiable_and_jittable():
    f = jax.jit(jax.grad(lambda r: tau_from_sigma(1.0, kappa_from_range(r, 1.5), 1.5, 2)))
    g = f(0.3)
    eps = 1e-3
    fd = (tau_from_sigma(1.0, kappa_from_range(0.3 + eps, 1.5), 1.5, 2)
          - tau_from_sigma(1.0, kappa_from_range(0.3 - eps, 1.5), 1.5, 2)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-2)


def test_symbol():
    spde = MaternSPDE(Box.unit(2))
    np.testing.assert_allclose(spde.symbol(jnp.array([0.0, 3.0]), 2.0, 0.5, 3.0), 0.5 * np.array([4.0, 7.0]) ** 1.5,
                               rtol=1e-6)


def test_box_validation():
    with pytest.raises(ValueError, match="bc must be"):
        Box((1.0, 1.0), "robin")
    with pytest.raises(ValueError, match="positive"):
        Box((1.0, -1.0))
    with pytest.raises(ValueError, match="d = 1, 2 or 3"):
        Box((1.0,) * 4)


@pytest.mark.parametrize("nu", [0.5, 1.0, 2.5])
@pytest.mark.parametrize("rho", [0.02, 0.1, 0.5])
def test_tail_variance_matches_weyl_closed_form_2d(nu, rho):
    """Above λ_min the 2-D Matérn's modes carry (κ²/(κ² + λ_min))^ν of the variance (σ = 1): the
    Weyl density 1/(4π) integrated against the spectrum."""
    spde = MaternSPDE(Box.unit(2))
    lam_min = 1.6e5
    k2 = kappa_from_range(rho, nu) ** 2
    th = jnp.array([math.log(rho), nu])
    got = float(spde.tail_variance(lam_min, th))
    np.testing.assert_allclose(got, (k2 / (k2 + lam_min)) ** nu, rtol=1e-5)
    # the generic quadrature (any diagonal SPDE) gives the same
    quad = float(super(MaternSPDE, spde).tail_variance(lam_min, th))
    np.testing.assert_allclose(quad, (k2 / (k2 + lam_min)) ** nu, rtol=2e-4)


@pytest.mark.parametrize("nu", [0.5, 1.5])
def test_tail_variance_1d_is_the_mode_integral(nu):
    """In 1-D the modes are λ_k = (πk)² on the unit interval: the tail is ∫_K^∞ D(λ_k)⁻² dk."""
    from scipy.integrate import quad

    spde = MaternSPDE(Box.unit(1))
    th = jnp.array([math.log(0.1), nu])
    K = 300.0
    S = lambda k: float(jnp.exp(-2 * spde.log_symbol(jnp.array([(math.pi * k) ** 2]), th))[0])  # noqa: E731
    want = quad(S, K, np.inf, limit=200)[0]
    got = float(spde.tail_variance((math.pi * K) ** 2, th))
    np.testing.assert_allclose(got, want, rtol=1e-3)
    farther = float(spde.tail_variance((2 * math.pi * K) ** 2, th))  # a higher cut leaves less out
    assert farther < 0.9 * got
