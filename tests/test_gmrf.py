"""The finite-element GMRF in JAX against the SciPy/scikit-fem truth: the same precision, an exact
marginal likelihood, and gradients that match finite differences (float64)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal

from pinnprob.fem import FEMMatern, anisotropy_matrix
from pinnprob.gmrf import FEMGrid


def test_precision_equals_the_scikit_fem_assembly():
    with jax.enable_x64(True):
        grid = FEMGrid.create(12)
        k2, tau = 8.0 / 0.3**2, 0.7
        H = anisotropy_matrix(0.5, math.log(2.0))  # constant H: both assemblies integrate it exactly
        fem = FEMMatern(12, lambda x: np.full(len(x), k2), lambda x: np.full(len(x), tau), H=lambda x: np.broadcast_to(H, (len(x), 2, 2)))
        np.testing.assert_allclose(np.asarray(grid.lumped), fem.lumped, rtol=1e-12)
        Q = grid.precision(jnp.full(grid.num_nodes, k2), jnp.full(grid.num_nodes, tau), jnp.asarray(H))
        Qf = fem.precision().toarray()
        np.testing.assert_allclose(np.asarray(Q), Qf, rtol=1e-10, atol=1e-10 * np.abs(Qf).max())


def test_log_marginal_is_the_gaussian_density_and_differentiable():
    with jax.enable_x64(True):
        grid = FEMGrid.create(10)
        rng = np.random.default_rng(0)
        X = rng.uniform(0.05, 0.95, (15, 2))
        A = grid.interpolation(X)
        y = jnp.asarray(rng.standard_normal(15))
        c = grid.centroids

        def loglik(theta):  # log range with a trend in x₁, an anisotropy angle, the noise
            rho = jnp.exp(theta[0] + theta[1] * (grid.nodes[:, 0] - 0.5))
            k2 = 8.0 / rho**2
            tau = 1.0 / jnp.sqrt(4 * math.pi * k2)
            H = anisotropy_matrix(theta[2] + 0.0 * c[:, 0], jnp.asarray(math.log(2.0)))  # JAX in, JAX out
            return grid.log_marginal(y, A, grid.precision(k2, tau, H), jnp.exp(theta[3]))

        theta = jnp.array([math.log(0.3), 0.4, 0.3, math.log(0.2)])
        # against the dense Gaussian with covariance A Q⁻¹ Aᵀ + s² I
        rho = np.exp(theta[0] + theta[1] * (np.asarray(grid.nodes[:, 0]) - 0.5))
        k2 = 8.0 / rho**2
        tau = 1.0 / np.sqrt(4 * math.pi * k2)
        H = anisotropy_matrix(np.full(len(c), 0.3), math.log(2.0))
        Q = np.asarray(grid.precision(jnp.asarray(k2), jnp.asarray(tau), jnp.asarray(H)))
        S = np.asarray(A) @ np.linalg.solve(Q, np.asarray(A).T) + 0.04 * np.eye(15)
        np.testing.assert_allclose(float(loglik(theta)), multivariate_normal(np.zeros(15), S).logpdf(np.asarray(y)),
                                   rtol=1e-10)
        g = jax.grad(loglik)(theta)
        for i in range(4):
            e = jnp.zeros(4).at[i].set(1e-5)
            fd = (loglik(theta + e) - loglik(theta - e)) / 2e-5
            np.testing.assert_allclose(float(g[i]), float(fd), rtol=1e-5, atol=1e-7)


def test_the_gmrf_field_has_the_fem_covariance():
    with jax.enable_x64(True):
        grid = FEMGrid.create(16)
        fem = FEMMatern.stationary(16, range=0.25, sigma=1.2)
        X = np.random.default_rng(1).uniform(0, 1, (6, 2))
        A = np.asarray(grid.interpolation(X))
        k2 = 8.0 / 0.25**2
        tau = 1.0 / (1.2 * math.sqrt(4 * math.pi * k2))
        Q = np.asarray(grid.precision(jnp.full(grid.num_nodes, k2), jnp.full(grid.num_nodes, tau), jnp.eye(2)))
        np.testing.assert_allclose(A @ np.linalg.solve(Q, A.T), fem.covariance(X), rtol=1e-9, atol=1e-12)
