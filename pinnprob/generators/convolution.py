"""A learned process convolution: a local Gaussian generator that is not diagonal in any basis.

    u(x; z, θ) = τ(x)⁻¹ h Σ_j z_j k_θ(x, c_j),     z ~ N(0, I_J),

with c_j the centres of a grid of J cells of side h over the box (h z_j is white noise integrated
over cell j; Higdon 2002, "Space and space-time modelling using process convolutions"). For an α = 2
local SPDE (κ²(x) − ∇·H∇)(τ(x)u) = W the exact kernel is the Neumann Green's function of
κ² − ∇·H∇. The kernel here is its frozen-coefficient form, corrected by two small networks:

    k_θ(x, c) = Σ_images K₀(κ_e r_H) / (2π √det H) · exp(a_w(θ, c) + b_w(θ, log κ_e r_H)),

* K₀(κ r)/(2π) the free-space Green's function of κ² − Δ (Abramowitz & Stegun 9.6), in the metric
  r_H = √(dᵀH⁻¹d); κ_e = √(κ(x)κ(c)), the geometric mean of the local inverse ranges (exact for
  constant κ);
* the Neumann (conormal) condition by images: for each wall, the oblique reflection of c along the
  conormal H n (an orthogonal reflection in the coordinates H^{-1/2}x, where the operator is the
  isotropic one), and the two reflections between parallel walls; the corner images (products of
  reflections at adjacent walls) are exact for axis-aligned H and have no exact counterpart for a
  rotated one (the reflections then generate no finite group): they are weighted down to zero as
  H turns away from the axes (:meth:`_images`);
* within a cell of the singularity (r_H < h/√π) K₀ is replaced by its mean over the disk of the
  cell's area, 2(1 − κa K₁(κa))/(κa)² (the cell-averaged kernel);
* a_w (per latent cell) and b_w (a radial profile in log κr, a Chebyshev series whose coefficients
  come from the network's values at the Chebyshev nodes; no table look-up, which is slow to
  differentiate) start at zero and are trained on the weak form
  (:class:`pinnprob.local_loss.LocalWeakFormLoss`);
* the discretisation's error in the variance, from the free-space kernel alone:
  v(x) = Σ_j (τ(x)⁻¹ h K₀(κ_e r)/(2π))², whose integral counterpart is 1. Where v < 1 (white noise
  on cells cannot carry the variance below the cell scale) the deficit δ = 1 − v is returned as
  a site variance (:meth:`site_variance_from_branch`), independent between sites (its correlation
  length is h). Where v > 1 (a site between cell centres at κh ≳ 0.5) the row is scaled by
  v^{-1/2}.

Full rank in the cells, Gaussian (covariance ΨΨᵀ exact), O(n J) per evaluation of Ψ.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.domain import Box
from pinnprob.generators.base import AbstractConvolutionGenerator
from pinnprob.spde.base import LocalSPDE
from pinnprob.special import k0, one_minus_x_k1

__all__ = ["ConvolutionGenerator", "ConvolutionBranch"]

_LOG_KR = (math.log(1e-3), math.log(30.0))  # the radial profile's span in log κr


class ConvolutionBranch(NamedTuple):
    """What a θ fixes: θ (p,), log κ at the centres (J,), H at the centres (J, d, d), the cell
    amplitudes a_w (J,) and the Chebyshev coefficients of the radial profile b_w (R,)."""

    theta: Float[Array, " p"]
    log_kappa_c: Float[Array, " J"]
    H_c: Float[Array, "J d d"]
    amp: Float[Array, " J"]
    radial: Float[Array, " R"]


def _zero_last(mlp: eqx.nn.MLP) -> eqx.nn.MLP:
    """The MLP with its last layer's weights and bias set to zero (output 0 at initialisation)."""
    last = mlp.layers[-1]
    mlp = eqx.tree_at(lambda m: m.layers[-1].weight, mlp, jnp.zeros_like(last.weight))
    return eqx.tree_at(lambda m: m.layers[-1].bias, mlp, jnp.zeros_like(last.bias))


def _chebyshev_nodes(K: int) -> Float[Array, " K"]:
    """The K Chebyshev points of the first kind on [-1, 1], cos(π(i + ½)/K)."""
    return jnp.cos(math.pi * (jnp.arange(K) + 0.5) / K)


def _chebyshev_coefficients(values: Float[Array, " K"]) -> Float[Array, " K"]:
    """The coefficients c of the degree-(K−1) Chebyshev interpolant of ``values`` taken at
    :func:`_chebyshev_nodes` (a DCT-II): Σ_k c_k T_k(s_i) = values_i."""
    K = values.shape[0]
    k = jnp.arange(K)
    T = jnp.cos(math.pi * k[:, None] * (k[None, :] + 0.5) / K)  # T_k at node i, (k, i)
    return (2.0 / K) * (T @ values) * jnp.where(k == 0, 0.5, 1.0)


@jax.custom_jvp
def _clenshaw(c: Float[Array, " K"], t):
    """Σ_k c_k T_k(t) by Clenshaw's recurrence, elementwise in t (K static). Its derivative in t is the
    derived series' (:func:`_chebyshev_derivative`), so that reverse mode keeps no recurrence terms
    (K arrays of t's shape)."""
    b1 = b2 = jnp.zeros_like(t)
    for ck in c[:0:-1]:
        b1, b2 = 2.0 * t * b1 - b2 + ck, b1
    return t * b1 - b2 + c[0]


def _chebyshev_derivative(c: Float[Array, " K"]) -> Float[Array, " K"]:
    """The coefficients d of (Σ_k c_k T_k)' = Σ_k d_k T_k (d_{K−1} = 0): d_{k−1} = d_{k+1} + 2k c_k,
    d_0 halved (Mason & Handscomb 2003, *Chebyshev Polynomials*, §2.4.5)."""
    K = c.shape[0]
    d = [jnp.zeros_like(c[0])] * (K + 1)
    for k in range(K - 1, 0, -1):
        d[k - 1] = d[k + 1] + 2.0 * k * c[k]
    d[0] = 0.5 * d[0]
    return jnp.stack(d[:K])


def _clenshaw_jvp(primals, tangents):
    (c, t), (dc, dt) = primals, tangents
    out = _clenshaw(c, t)
    tangent = jnp.zeros_like(out)
    # symbolic zeros: a derivative in t alone (the weak form's ∇ₓ) skips the coefficients' series
    if not isinstance(dc, SymbolicZero):  # linear in c: the series of dc (reverse mode transposes it)
        tangent = tangent + _clenshaw(dc, t)
    if not isinstance(dt, SymbolicZero):
        tangent = tangent + _clenshaw(_chebyshev_derivative(c), t) * dt
    return out, tangent


_clenshaw.defjvp(_clenshaw_jvp, symbolic_zeros=True)


class ConvolutionGenerator(AbstractConvolutionGenerator):
    """The learned process convolution for a local α = 2 SPDE in 2-D (see the module notes)."""

    spde: LocalSPDE
    amp_net: eqx.nn.MLP
    radial_net: eqx.nn.MLP
    domain: Box = eqx.field(static=True)
    spacing: float = eqx.field(static=True)
    num_knots: int = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, domain: Box, spde: LocalSPDE, spacing: float = 0.01, width: int = 32,
                 depth: int = 2, num_knots: int = 16):
        if domain.dim != 2:
            raise ValueError("ConvolutionGenerator is 2-D")
        n = [round(L / spacing) for L in domain.lengths]
        if any(abs(k * spacing - L) > 1e-9 * L for k, L in zip(n, domain.lengths)):
            raise ValueError(f"spacing {spacing} must divide the box's sides {domain.lengths}")
        k1, k2 = jax.random.split(key)
        p = spde.space.dim
        self.spde, self.domain, self.spacing, self.num_knots = spde, domain, float(spacing), int(num_knots)
        self.amp_net = _zero_last(eqx.nn.MLP(p + 2, "scalar", width, depth, activation=jax.nn.tanh, key=k1))
        self.radial_net = _zero_last(eqx.nn.MLP(p + 1, "scalar", width, depth, activation=jax.nn.tanh, key=k2))

    @property
    def space(self):
        return self.spde.space

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(round(L / self.spacing) for L in self.domain.lengths)

    @property
    def latent_dim(self) -> int:
        return math.prod(self.grid_shape)

    def centres(self) -> Float[Array, "J 2"]:
        """The cell centres c_j, row-major over the grid, shape (J, 2)."""
        h = self.spacing
        axes = [h * (np.arange(n) + 0.5) for n in self.grid_shape]
        g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        return jnp.asarray(g, dtype=jnp.result_type(float))

    # -- the DeepONet split --------------------------------------------------------------------------
    def features(self, X: Float[Array, "n 2"]) -> Float[Array, "n 2"]:
        """The sites themselves (the kernel depends on x through the coefficients and distances)."""
        return jnp.asarray(X)

    def branch(self, theta) -> ConvolutionBranch:
        C = self.centres()
        coef = self.spde.coefficients(C, theta)
        th = self.space.normalize(theta)
        inp = jnp.concatenate([jnp.broadcast_to(th, (C.shape[0], th.shape[-1])), 2.0 * C - 1.0], axis=1)
        amp = jax.vmap(self.amp_net)(inp)
        s = _chebyshev_nodes(self.num_knots)
        K = s.shape[0]
        vals = jax.vmap(self.radial_net)(jnp.concatenate([jnp.broadcast_to(th, (K, th.shape[-1])), s[:, None]], axis=1))
        radial = _chebyshev_coefficients(vals)
        return ConvolutionBranch(jnp.asarray(theta), 0.5 * jnp.log(coef.kappa2), coef.H, amp, radial)

    def _images(self, C, H_c):
        """The centres and their images, (I, J, 2), with weights (I, J): per axis a, the oblique
        reflections c − 2(c_a − w) H e_a / H_aa at the walls w ∈ {0, L_a} and the two products of
        reflections at parallel walls (weight 1); at the corners, the products of reflections at
        adjacent walls in both orders, exact when H is axis-aligned (the reflections commute) and
        wrong when it is not (they generate no finite group), so weighted by w/2 each with
        w = max(0, 1 − m/0.3), m = |H₁₂|/√(H₁₁H₂₂) the misalignment (1 for aligned or isotropic H,
        0 from m = 0.3 on)."""
        def refl(c, a, wall):
            e = H_c[:, :, a] / H_c[:, a, a][:, None]  # conormal direction, scaled to unit a-component
            return c - 2.0 * (c[:, a] - wall)[:, None] * e

        out = [C]
        for a, L in enumerate(self.domain.lengths):
            out += [refl(C, a, 0.0), refl(C, a, L), refl(refl(C, a, 0.0), a, L), refl(refl(C, a, L), a, 0.0)]
        ones = [jnp.ones(C.shape[0])] * len(out)
        m = jnp.abs(H_c[:, 0, 1]) / jnp.sqrt(H_c[:, 0, 0] * H_c[:, 1, 1])
        w = jnp.clip(1.0 - m / 0.3, 0.0, 1.0)
        (L0, L1) = self.domain.lengths
        corners = []
        for w0 in (0.0, L0):
            for w1 in (0.0, L1):
                corners += [refl(refl(C, 0, w0), 1, w1), refl(refl(C, 1, w1), 0, w0)]
        return jnp.stack(out + corners), jnp.stack(ones + [0.5 * w] * len(corners))

    def _kernel(self, X, b: ConvolutionBranch, idx=None, free: bool = False) -> Float[Array, "n J"]:
        """h k_θ(x_i, c_j) (the columns of τΨ), for all cells or the cells ``idx``; ``free``: the
        free-space kernel alone (no images, no learned factors)."""
        C = self.centres()
        lk_c, H_c, amp = b.log_kappa_c, b.H_c, b.amp
        if idx is not None:
            C, lk_c, H_c, amp = C[idx], lk_c[idx], H_c[idx], amp[idx]
        lk_x = 0.5 * jnp.log(self.spde.coefficients(X, b.theta).kappa2)
        Hinv = jnp.linalg.inv(H_c)  # (J, 2, 2)
        det = jnp.linalg.det(H_c)
        log_ke = 0.5 * (lk_x[:, None] + lk_c[None, :])  # κ_e = √(κ(x)κ(c)), (n, J)
        ke = jnp.exp(log_ke)
        a = self.spacing / math.sqrt(math.pi)  # radius of the disk of a cell's area
        cap = 2.0 * one_minus_x_k1(ke * a) / (ke * a) ** 2

        P11, P12, P22 = Hinv[:, 0, 0], Hinv[:, 0, 1], Hinv[:, 1, 1]

        def dist(Ci):
            """r_H = √(dᵀH⁻¹d), d = x − c, (n, J), written out (an einsum over (n, J, 2) is slower)."""
            d0, d1 = X[:, 0:1] - Ci[None, :, 0], X[:, 1:2] - Ci[None, :, 1]
            return jnp.sqrt(jnp.maximum(d0 * d0 * P11 + 2.0 * d0 * d1 * P12 + d1 * d1 * P22, 1e-30))

        if free:
            r = dist(C)
            g = jnp.where(r < a, cap, k0(jnp.maximum(ke * r, 1e-30)))
            return self.spacing * g / (2.0 * math.pi * jnp.sqrt(det))[None, :]

        def one(Ci):
            r = dist(Ci)
            kr = ke * r
            # b_w: its Chebyshev series in log κr mapped to [-1, 1] and clamped to the span (Clenshaw)
            t = (jnp.log(jnp.maximum(kr, 1e-30)) - _LOG_KR[0]) / (_LOG_KR[1] - _LOG_KR[0])
            t = jnp.clip(2.0 * t - 1.0, -1.0, 1.0)
            rad = _clenshaw(b.radial, t)
            g = jnp.where(r < a, cap, k0(jnp.maximum(kr, 1e-30)))
            return g * jnp.exp(rad)

        images, weights = self._images(C, H_c)
        # a Python loop, not a vmap over the images: XLA then fuses each image's pass and never holds
        # the (I, n, J) stack (3× faster here)
        G = sum(one(images[i]) * weights[i][None, :] for i in range(images.shape[0]))
        return self.spacing * G * jnp.exp(amp)[None, :] / (2.0 * math.pi * jnp.sqrt(det))[None, :]

    def _free_variance(self, X, b: ConvolutionBranch) -> Float[Array, " n"]:
        """v(x) = Σ_j (τ(x)⁻¹ h K₀(κ_e r)/(2π√det H))², the free-space kernel's discrete variance, whose
        continuum value is 1."""
        log_tau = self.spde.coefficients(X, b.theta).log_tau
        return jnp.exp(-2.0 * log_tau) * jnp.sum(self._kernel(X, b, free=True) ** 2, axis=1)

    def basis_from_branch(self, X, b: ConvolutionBranch) -> Float[Array, "n J"]:
        """Ψ (n, J): s(x) τ(x)⁻¹ h k_θ(x, c_j), with s(x) = min(1, v(x)^{-1/2}) scaling down the sites where
        the cells' discrete sum overshoots its continuum value (v > 1; :meth:`site_variance_from_branch`
        adds what it undershoots)."""
        log_tau = self.spde.coefficients(X, b.theta).log_tau
        s = jax.lax.rsqrt(jnp.maximum(self._free_variance(X, b), 1.0))
        return (s * jnp.exp(-log_tau))[:, None] * self._kernel(X, b)

    def site_variance_from_branch(self, X, b: ConvolutionBranch) -> Float[Array, " n"]:
        """δ(x) = max(0, 1 − v(x)): the sub-cell variance (σ = 1) the cells' discrete sum undershoots."""
        return jnp.maximum(1.0 - self._free_variance(X, b), 0.0)

    def combine(self, X, b, z):
        return self.basis_from_branch(X, b) @ z

    def kernel_columns(self, X, theta, idx) -> Float[Array, "n s"]:
        """τ(x)·Ψ(x)[:, idx] = h k_θ(x, c_j) for the cells ``idx`` (s,), shape (n, s): the fields v_j = τu_j
        that the weak form tests."""
        return self._kernel(X, self.branch(theta), idx)
