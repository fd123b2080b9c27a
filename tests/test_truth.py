"""The exact solution on the box against the Matérn covariance on R^d, and images against the series."""

import math

import numpy as np
import pytest
from scipy.special import gamma, kv

from pinnprob import truth
from pinnprob.domain import Box
from pinnprob.testfunctions import BoxEigenbasis


def test_matern_correlation_matches_scipy_formula():
    h = np.array([0.0, 0.01, 0.1, 0.3, 1.0])
    for nu in (0.5, 1.0, 1.5, 2.5, 0.8):
        kappa = 7.0
        x = kappa * h[1:]
        expect = 2 ** (1 - nu) / gamma(nu) * x**nu * kv(nu, x)
        got = truth.matern_correlation(h, kappa=kappa, nu=nu)
        assert got[0] == 1.0
        np.testing.assert_allclose(got[1:], expect, rtol=1e-10)


def test_matern_correlation_jax_matches_scipy_and_is_differentiable_in_nu():
    import jax

    h = np.array([0.0, 1e-3, 0.02, 0.1, 0.3, 0.8])
    for nu in (0.5, 1.0, 1.5, 2.2):
        kappa = math.sqrt(8 * nu) / 0.3
        with jax.enable_x64(True):
            got = np.asarray(truth.matern_correlation_jax(h, range=0.3, nu=nu))
        np.testing.assert_allclose(got, truth.matern_correlation(h, kappa=kappa, nu=nu), rtol=1e-6, atol=1e-12)
    # d/dν by autodiff against a central difference of the SciPy formula
    f = lambda nu: truth.matern_correlation(0.1, kappa=math.sqrt(8 * nu) / 0.3, nu=nu)  # noqa: E731
    with jax.enable_x64(True):
        g = float(jax.grad(lambda nu: truth.matern_correlation_jax(0.1, range=0.3, nu=nu))(1.5))
    np.testing.assert_allclose(g, (f(1.5 + 1e-5) - f(1.5 - 1e-5)) / 2e-5, rtol=1e-5)


@pytest.mark.parametrize("nu", [0.5, 1.0, 1.5, 2.5])
def test_far_from_boundary_box_tends_to_matern(nu):
    # a short range in a big box: points near the centre see no boundary
    box = Box((10.0, 10.0), "neumann")
    rho = 0.5
    rng = np.random.default_rng(1)
    X = 5.0 + rng.uniform(-0.5, 0.5, (15, 2))
    C = truth.box_covariance(X, X, box, range=rho, sigma=1.3, nu=nu)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.testing.assert_allclose(np.diag(C), 1.3**2, rtol=1e-8)
    np.testing.assert_allclose(C, truth.matern_covariance(D, range=rho, sigma=1.3, nu=nu), atol=1e-8)


@pytest.mark.parametrize("nu", [0.5, 1.0, 1.5, 2.5])
def test_spectral_series_variance_tends_to_sigma2_at_centre(nu):
    # the truncated eigen-expansion (any real α) converges to σ² far from the boundary
    box = Box((6.0, 6.0), "neumann")
    rho = 0.6
    c = np.array([[3.0, 3.0]])
    v = truth.spectral_covariance(c, c, box, range=rho, sigma=1.0, nu=nu, num_per_dim=400)[0, 0]
    # tail of the series beyond |ω| = π·400/6 for α = ν + 1: fraction ≈ ((κ/ω_max)^{2ν})
    kappa = math.sqrt(8 * nu) / rho
    tail = (kappa / (math.pi * 400 / 6)) ** (2 * nu)
    assert abs(v - 1.0) < 3 * tail + 2e-3, (v, tail)


def test_boundary_inflation_neumann_and_dirichlet():
    box_n, box_d = Box.unit(2, "neumann"), Box.unit(2, "dirichlet")
    corner, edge, mid = np.array([[0.0, 0.0]]), np.array([[0.0, 0.5]]), np.array([[0.5, 0.5]])
    k = dict(range=0.1, sigma=1.0, nu=1.5)
    assert abs(truth.box_covariance(corner, corner, box_n, **k)[0, 0] - 4.0) < 1e-6
    assert abs(truth.box_covariance(edge, edge, box_n, **k)[0, 0] - 2.0) < 1e-6
    assert abs(truth.box_covariance(mid, mid, box_n, **k)[0, 0] - 1.0) < 1e-6
    assert abs(truth.box_covariance(edge, edge, box_d, **k)[0, 0]) < 1e-6


@pytest.mark.parametrize("bc", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("dim", [1, 2])
def test_images_equal_eigen_series(bc, dim):
    box = Box(tuple([1.0] * dim), bc)
    X = np.random.default_rng(0).uniform(0, 1, (12, dim))
    k = dict(range=0.5, sigma=1.0, nu=2.0)
    C1 = truth.box_covariance(X, X, box, **k)
    C2 = truth.spectral_covariance(X, X, box, num_per_dim=300 if dim == 1 else 120, **k)
    np.testing.assert_allclose(C1, C2, atol=2e-5 * np.abs(C1).max())


def test_images_in_3d_against_series():
    box = Box((1.0, 1.0, 1.0), "neumann")
    X = np.random.default_rng(0).uniform(0, 1, (5, 3))
    k = dict(range=0.8, sigma=1.0, nu=2.5)
    np.testing.assert_allclose(truth.box_covariance(X, X, box, **k),
                               truth.spectral_covariance(X, X, box, num_per_dim=40, **k), rtol=1e-4, atol=1e-6)


def test_spectral_sample_covariance_matches_within_monte_carlo():
    box = Box.unit(1)
    X = np.linspace(0, 1, 6)[:, None]
    k = dict(range=0.4, sigma=1.0, nu=1.5)
    N = 20000
    U = truth.spectral_sample(3, X, box, num_samples=N, num_per_dim=200, **k)
    C = truth.box_covariance(X, X, box, **k)
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / N)  # sd of each empirical covariance entry
    assert np.all(np.abs(U.T @ U / N - C) < 4.5 * se)


def test_cholesky_sample_and_eigenbasis_orthonormal():
    box = Box((2.0, 1.0), "neumann")
    b = BoxEigenbasis.create(box, 6)
    # midpoint rule with 64 points per axis is exact for these cosines
    g0 = (np.arange(64) + 0.5) / 64
    X = np.stack(np.meshgrid(2 * g0, g0, indexing="ij"), -1).reshape(-1, 2)
    P = np.asarray(b(X), np.float64)
    G = P.T @ P * (2.0 / 64**2)
    np.testing.assert_allclose(G, np.eye(b.size), atol=1e-5)
    assert np.all(np.diff(np.asarray(b.eigenvalues)) >= 0)
    C = np.array([[2.0, 0.5], [0.5, 1.0]])
    U = truth.cholesky_sample(0, C, 40000)
    np.testing.assert_allclose(U.T @ U / 40000, C, atol=0.05)
