"""The dense factorisation helpers of the collapsed likelihoods (pinnprob.inference.linalg) against
NumPy and JAX's reverse mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from pinnprob.inference.linalg import cholesky, gaussian_logpdf, inverse_diagonal, triangular_inverse


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n // 2))
    return A @ A.T + 0.5 * np.eye(n)


@pytest.mark.parametrize("block", [128, 512, 1024])  # 9 blocks (the last short), 3, 2
def test_inverse_by_blocks_against_numpy(block):
    with jax.enable_x64(True):
        C = _spd(1100, 0)
        L = cholesky(jnp.asarray(C))
        np.testing.assert_allclose(L @ L.T, C, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(inverse_diagonal(L, block), np.diag(np.linalg.inv(C)), rtol=1e-10)
        X = triangular_inverse(L, block)
        np.testing.assert_array_equal(np.triu(np.asarray(X), 1), 0.0)
        np.testing.assert_allclose(X @ L, np.eye(1100), atol=1e-10)


def test_gaussian_logpdf_and_its_written_out_gradient():
    """Value against SciPy; the gradient in the values and in C against JAX's reverse mode through the
    Cholesky factor, for one value and for a batch of three with weights, at n = 1 100 (two blocks)."""

    def reference(v, C):
        L = jnp.linalg.cholesky(C)
        w = jax.scipy.linalg.solve_triangular(L, v.T, lower=True)
        return -0.5 * (jnp.sum(w**2, 0) + 2 * jnp.sum(jnp.log(jnp.diagonal(L))) + v.shape[-1] * jnp.log(2 * jnp.pi))

    rng = np.random.default_rng(1)
    n = 1100
    with jax.enable_x64(True):
        C = jnp.asarray(_spd(n, 2))
        v = jnp.asarray(rng.standard_normal((3, n)))
        np.testing.assert_allclose(gaussian_logpdf(v, C), multivariate_normal(np.zeros(n), np.asarray(C)).logpdf(v),
                                   rtol=1e-10)
        assert gaussian_logpdf(v[0], C).shape == ()
        wts = jnp.asarray([0.5, -1.0, 2.0])
        for x, w in ((v, wts), (v[:1], wts[:1])):
            ours = jax.jit(jax.value_and_grad(lambda x, C: jnp.sum(w * gaussian_logpdf(x, C)), (0, 1)))(x, C)
            theirs = jax.jit(jax.value_and_grad(lambda x, C: jnp.sum(w * reference(x, C)), (0, 1)))(x, C)
            np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
            for a, b in zip(ours[1], theirs[1], strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * float(jnp.max(jnp.abs(b))))
