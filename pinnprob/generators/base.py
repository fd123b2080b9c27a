"""The interface of the generators u(x; z, θ), as abstract Equinox modules.

Every generator takes sites X (n, d) in the unit box, a latent z (m,) and θ (p,), the SPDE's
parameters in natural coordinates (:class:`~pinnprob.parameters.ParameterSpace`), and returns the
field at X *for σ = 1*; the prior multiplies by σ (σ enters analytically, the network never sees it).

The split is DeepONet's (Lu et al. 2021, Nat. Mach. Intell. 3, 218): ``features(X)`` once per set of
sites, ``branch(θ)`` once per θ, ``combine(features, branch, z)``. What a generator can do follows
from its type, so that algorithms are chosen by type (as tinygp picks a solver from the kernel):

* :class:`AbstractGaussianGenerator` — linear in z ~ N(0, I): u = Ψ(X; θ) z, with its linear map
  ``basis_from_branch`` (exact covariance ΨΨᵀ, closed-form divergences, collapsed likelihoods);
* :class:`AbstractDiagonalGenerator` — Gaussian with Ψ = Φ diag(a(θ)) on the box eigenbasis Φ
  (a Gram matrix ΦᵀΦ once per data set; separable 1-D tables for products);
* :class:`AbstractConvolutionGenerator` — Gaussian process convolutions on a grid of cells, whose
  latent is the cell noise (the weak form is then known per column);
* :class:`AbstractPushForwardGenerator` — nonlinear in z: samples only.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.parameters import ParameterSpace

__all__ = [
    "AbstractGenerator",
    "AbstractGaussianGenerator",
    "AbstractDiagonalGenerator",
    "AbstractPushForwardGenerator",
    "AbstractConvolutionGenerator",
    "FourierFeatures",
]


class AbstractGenerator(eqx.Module):
    """u(x; z, θ) = combine(features(X), branch(θ), z), for σ = 1."""

    space: eqx.AbstractVar[ParameterSpace]

    @property
    @abc.abstractmethod
    def latent_dim(self) -> int:
        """m, the size of z."""

    @abc.abstractmethod
    def features(self, X: Float[Array, "n d"]):
        """θ-independent features of the sites (the trunk), leading dimension n."""

    @abc.abstractmethod
    def branch(self, theta: Float[Array, " p"]):
        """The θ-dependent part, computed once per θ."""

    @abc.abstractmethod
    def combine(self, features, branch, z: Float[Array, " m"]) -> Float[Array, " n"]:
        """The field at the sites from their features, the branch and z."""

    def product_features(self, X: Float[Array, "n d"]):
        """Features for products only (the latent path, predictions); default :meth:`features`."""
        return self.features(X)

    def site_variance_at(self, features, theta: Float[Array, " p"]) -> Float[Array, " n"]:
        """The variance per site (σ = 1) that the latent does not carry, independent between sites
        (default: none)."""
        return jnp.zeros(features.shape[0])

    def weighted_sum(self, features, branches, weights: Float[Array, " S"],
                     Z: Float[Array, "S m"]) -> Float[Array, " n"]:
        """Σ_s w_s combine(features, branch_s, z_s), a weighted sum of S fields (``branches`` with a leading
        axis S), e.g. a posterior mean over draws; default one field per term."""
        return jnp.tensordot(weights, jax.vmap(lambda b, z: self.combine(features, b, z))(branches, Z), 1)

    def for_inference(self, theta_bounds: Float[Array, "p 2"]) -> "AbstractGenerator":
        """The generator a model evaluates when θ stays within ``theta_bounds`` (natural
        coordinates, (p, 2)): the same law, possibly cheaper (default: itself)."""
        return self

    def __call__(self, X: Float[Array, "n d"], z: Float[Array, " m"], theta: Float[Array, " p"]) -> Float[Array, " n"]:
        return self.combine(self.features(X), self.branch(theta), z)

    def covariance(self, X: Float[Array, "n d"], theta: Float[Array, " p"]) -> Float[Array, "n n"]:
        """The field's exact covariance at X (n, n), for σ = 1, where the type knows it in closed form
        (default: it does not; TypeError)."""
        raise TypeError(f"the {type(self).__name__} generator has no closed-form covariance; estimate it from "
                        "sample()")


class AbstractGaussianGenerator(AbstractGenerator):
    """A generator linear in z ~ N(0, I): u = Ψ(X; θ) z, covariance ΨΨᵀ."""

    @abc.abstractmethod
    def basis_from_branch(self, features, branch) -> Float[Array, "n m"]:
        """Ψ (n, m), the linear map z ↦ u, dense."""

    def basis_matrix(self, X: Float[Array, "n d"], theta: Float[Array, " p"]) -> Float[Array, "n m"]:
        """Ψ(X; θ): the field is Ψ z (plus its site part) and its covariance ΨΨᵀ + diag(site variance)."""
        return self.basis_from_branch(self.features(X), self.branch(theta))

    def site_variance_from_branch(self, features, branch) -> Float[Array, " n"]:
        """The variance per site (σ = 1) that the latent does not carry: a part of the field below the
        generator's resolution, independent between sites (default: none). The law of the field is
        N(0, ΨΨᵀ + diag(site variance))."""
        return jnp.zeros(features.shape[0])

    def site_variance_at(self, features, theta: Float[Array, " p"]) -> Float[Array, " n"]:
        """The site variance from the sites' features and θ (default: through the branch)."""
        return self.site_variance_from_branch(features, self.branch(theta))

    def site_variance(self, X: Float[Array, "n d"], theta: Float[Array, " p"]) -> Float[Array, " n"]:
        return self.site_variance_at(self.features(X), theta)

    def covariance(self, X, theta):
        """ΨΨᵀ + diag(site variance) at X (n, n), for σ = 1."""
        Psi = self.basis_matrix(X, theta)
        return Psi @ Psi.T + jnp.diag(self.site_variance(X, theta))


class AbstractDiagonalGenerator(AbstractGaussianGenerator):
    """Gaussian with Ψ = Φ(X) diag(a(θ)): the box eigenbasis Φ scaled per column by amplitudes a(θ)."""

    basis: eqx.AbstractVar[object]  # a BoxEigenbasis

    @abc.abstractmethod
    def log_amplitudes(self, theta: Float[Array, " p"], eigenvalues=None) -> Float[Array, " K"]:
        """log a(θ, λ_k) per mode (default: the trunk's eigenvalues), shape (K,)."""

    @abc.abstractmethod
    def with_basis(self, basis) -> "AbstractDiagonalGenerator":
        """The same amplitudes on another truncation of the eigenbasis."""

    @property
    def latent_dim(self) -> int:
        return self.basis.size

    def tail_variance(self, theta: Float[Array, " p"]) -> Float[Array, ""]:
        """The variance (σ = 1) of the field's modes above the trunk, which the latent does not carry
        (default: none). It is the same at every site: the generator's site variance."""
        return jnp.zeros(())

    def site_variance_at(self, features, theta):
        """:meth:`tail_variance` at each of the n sites (features (n, K), dense or separable)."""
        return jnp.broadcast_to(self.tail_variance(theta), (features.shape[0],))

    def site_variance(self, X, theta):
        return jnp.broadcast_to(self.tail_variance(theta), (jnp.shape(X)[0],))

    def amplitudes(self, theta, eigenvalues=None) -> Float[Array, " K"]:
        """a(θ, λ_k): standard deviation of the coefficient ⟨u, φ_k⟩ for σ = 1."""
        return jnp.exp(self.log_amplitudes(theta, eigenvalues))

    def branch(self, theta) -> Float[Array, " K"]:
        return self.amplitudes(theta)

    def features(self, X):
        """The trunk Φ(X), dense (n, K)."""
        return self.basis(X)

    def product_features(self, X):
        """The trunk Φ(X) as its 1-D tables (:class:`~pinnprob.testfunctions.SeparableFeatures`): the
        same products, n·Σ M_i numbers instead of n·K."""
        return self.basis.separable(X)

    def combine(self, features, b, z):
        """u = Φ (a ⊙ z); Φ dense or separable."""
        return features @ (b * z)

    def weighted_sum(self, features, branches, weights, Z):
        """Σ_s w_s Φ(a_s ⊙ z_s) = Φ(Σ_s w_s a_s ⊙ z_s): one product with the trunk, whatever S."""
        return features @ jnp.sum(weights[:, None] * branches * Z, 0)

    def basis_from_branch(self, features, b):
        from pinnprob.testfunctions.eigen import dense_features

        return dense_features(features) * b


class AbstractConvolutionGenerator(AbstractGaussianGenerator):
    """A process convolution u = τ(x)⁻¹ h Σ_j z_j k_θ(x, c_j) on a grid of cells c_j of side h: z_j is the
    white noise of cell j, so the weak form's residual map is known column by column (each column
    should be the Green's function of the operator: a_θ(h k_θ(·, c_j), ψ) = h ψ(c_j))."""

    spacing: eqx.AbstractVar[float]

    @abc.abstractmethod
    def centres(self) -> Float[Array, "J d"]:
        """The cell centres c_j, (J, d)."""

    @abc.abstractmethod
    def kernel_columns(self, X: Float[Array, "n d"], theta, idx) -> Float[Array, "n s"]:
        """v_j(x) = h k_θ(x, c_j) = τ(x) Ψ(x)_j for the cells ``idx``, shape (n, s)."""


class AbstractPushForwardGenerator(AbstractGenerator):
    """A generator nonlinear in z: its law has no tractable density (sample-based divergences)."""

    @abc.abstractmethod
    def coefficients(self, z: Float[Array, " m"], theta: Float[Array, " p"]) -> Float[Array, " K"]:
        """⟨u, φ_k⟩ on its trunk basis, for the exact projection in the loss."""


class FourierFeatures(eqx.Module):
    """x ↦ [cos(2π Bx), sin(2π Bx)] with a fixed random frequency matrix B (F, d).

    MLPs are biased against high frequencies; Fourier features remove the bias
    (Tancik et al. 2020). B is a constant (``jax.lax.stop_gradient``), not trained.
    """

    B: Float[Array, "F d"]

    def __init__(self, key: PRNGKeyArray, dim: int, num_features: int, scale: float):
        self.B = scale * jax.random.normal(key, (num_features, dim))

    @property
    def out_size(self) -> int:
        return 2 * self.B.shape[0]

    def __call__(self, X: Float[Array, "n d"]) -> Float[Array, "n 2F"]:
        proj = 2.0 * math.pi * X @ jax.lax.stop_gradient(self.B).T
        return jnp.concatenate([jnp.cos(proj), jnp.sin(proj)], axis=-1)
