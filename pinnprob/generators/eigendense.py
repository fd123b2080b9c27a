"""The eigenbasis generator with a learned dense branch: the box eigenbasis, mixed by a θ-dependent matrix.

u(x; z, θ) = Σ_{k,j} φ_k(x) B_kj(θ) z_j,   B(θ) = diag(a(θ, λ)) + W(θ),   z ~ N(0, I_K)

The trunk φ_k is the box's orthonormal Laplacian eigenbasis (as for the spectral generator); the
branch has a diagonal part, one amplitude network a(θ, λ_k) per mode (the spectral generator's), and
a dense K × K part W(θ) from an MLP of θ whose last layer starts at zero, so that training starts
from a diagonal (stationary-like) law. W couples the modes, which an operator that is not diagonal
on the eigenbasis needs (a range or an anisotropy that varies in space): this is the
"eigenbasis trunk with a dense branch" that DeepONet-style operator learning would use (Lu et al.
2021, Nat. Mach. Intell. 3, 218), against which the process convolution is compared. Its branch
has K² outputs per θ, which limits K to a few hundred modes, hence its resolution to ranges of
about 1/√λ_K and above.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import AbstractGaussianGenerator
from pinnprob.parameters import ParameterSpace
from pinnprob.testfunctions.eigen import BoxEigenbasis, dense_features

__all__ = ["EigenDenseGenerator"]


class EigenDenseGenerator(AbstractGaussianGenerator):
    """Gaussian generator Ψ(X; θ) = Φ(X) (diag a(θ, λ) + W(θ)) on the box eigenbasis Φ (K modes)."""

    basis: BoxEigenbasis
    amplitude_net: eqx.nn.MLP
    dense_net: eqx.nn.MLP
    space: ParameterSpace = eqx.field(static=True)
    log_lambda_max: float = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, space: ParameterSpace,
                 width: int = 64, depth: int = 2):
        k1, k2 = jax.random.split(key)
        K = basis.size
        self.basis, self.space = basis, space
        self.amplitude_net = eqx.nn.MLP(space.dim + 1, "scalar", width, depth, activation=jax.nn.tanh, key=k1)
        dense = eqx.nn.MLP(space.dim, K * K, width, depth, activation=jax.nn.tanh, key=k2)
        # the dense part starts at zero: the initial law is diagonal on the eigenbasis
        last = dense.layers[-1]
        self.dense_net = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), dense,
                                     (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
        self.log_lambda_max = float(math.log1p(float(jnp.max(basis.eigenvalues))))

    @property
    def latent_dim(self) -> int:
        return self.basis.size

    def features(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """The trunk Φ(X), dense (n, K)."""
        return dense_features(self.basis(X))

    def branch(self, theta: Float[Array, " p"]) -> Float[Array, "K K"]:
        """B(θ) = diag(a(θ, λ_k)) + W(θ), (K, K)."""
        th = self.space.normalize(theta)
        lam = self.basis.eigenvalues
        s = 2.0 * jnp.log1p(lam) / self.log_lambda_max - 1.0  # the frequency input, about [−1, 1]
        inp = jnp.concatenate([jnp.broadcast_to(th, (lam.shape[0], th.shape[-1])), s[:, None]], axis=1)
        a = jnp.exp(jax.vmap(self.amplitude_net)(inp))
        K = lam.shape[0]
        return jnp.diag(a) + self.dense_net(th).reshape(K, K) / math.sqrt(K)

    def combine(self, features, b, z):
        return features @ (b @ z)

    def basis_from_branch(self, features, b):
        return features @ b
