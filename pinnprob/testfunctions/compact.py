"""Compactly supported test functions for the weak form (docs/method.md, "The weak form").

For operators that are not diagonal in a known basis (κ(x), anisotropy, advection,
other domains) the weak residual is computed with compactly supported test
functions ψ_k, moving the integer-order operator onto them by integration by
parts:

    r_k = ⟨L u, ψ_k⟩ = ⟨u, L* ψ_k⟩,        ⟨W, ψ_k⟩ ~ N(0, G),  G_kl = ⟨ψ_k, ψ_l⟩.

For the Matérn operator L = τ(κ² − Δ)^{α/2} with even integer α = 2j the
operator is a polynomial in Δ, hence self-adjoint: L* ψ = τ(κ² − Δ)^j ψ.
Integration by parts has no boundary terms when ψ and its derivatives up to order
α − 1 vanish on the edge of its support, and that support lies inside the domain
(then the boundary condition of the box plays no role at all).

Test functions here are *tensor-product polynomial bumps*

    ψ_k(x) = Π_i b((x_i − c_{k,i}) / r_{k,i}),     b(t) = (1 − t²)^p  for |t| < 1,  0 otherwise,

supported on the box Π_i [c_{k,i} − r_{k,i}, c_{k,i} + r_{k,i}]. b has zeros of order p at
t = ±1, so ψ ∈ C^{p−1}: the power p ≥ α is required (derivatives up to α − 1 vanish
at the edge), and p ≥ α + 1 is recommended (then L*ψ is continuous too, and
quadrature rules that are not aligned with the supports converge at their usual
rate). On each support ψ_k is a polynomial, so L*ψ_k is known in closed form; the
generic autodiff route (:func:`apply_adjoint`) is also provided, for any scalar
function.

Fractional or odd α: (κ² − Δ)^{α/2} is then non-local, L*ψ is not compactly
supported and has no pointwise derivative formula — use
:class:`~pinnprob.testfunctions.eigen.BoxEigenbasis`, on which L acts exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from pinnprob.domain import Box

__all__ = ["BumpTestFunctions", "apply_adjoint", "laplacian", "adjoint_order"]


# ----------------------------------------------------------------------------------------
# the order check


def adjoint_order(alpha) -> int:
    """j = α/2 for an even positive integer α given as a static Python/NumPy number.

    Raises ``ValueError`` for a traced α, for α ≤ 0, for fractional α and for odd α,
    explaining why (the operator is then non-local) and what to use instead.
    """
    try:
        a = float(alpha)
    except jax.errors.ConcretizationTypeError as e:
        raise ValueError(
            "alpha must be a static Python number (the order of the differential operator "
            "decides how many derivatives are taken), not a traced array: mark it static, e.g. "
            "jax.jit(f, static_argnames='alpha'), or pass a Python float to eqx.filter_jit."
        ) from e
    except (TypeError, ValueError) as e:
        raise ValueError(f"alpha must be a real number, got {alpha!r}") from e
    if not math.isfinite(a) or a <= 0:
        raise ValueError(f"alpha must be a positive even integer here, got {a}")
    if abs(a - round(a)) > 1e-9:
        raise ValueError(
            f"alpha = {a} is fractional: (κ² − Δ)^(α/2) is then a non-local pseudo-differential "
            "operator, so it cannot be moved onto compactly supported test functions by "
            "integration by parts and autodiff (L*ψ is not compactly supported and has no "
            "pointwise derivative formula). Use the Laplacian eigenbasis "
            "(pinnprob.testfunctions.BoxEigenbasis), on which the operator acts exactly as "
            "τ(κ² + λ_k)^(α/2) for any real α."
        )
    n = int(round(a))
    if n % 2:
        raise ValueError(
            f"alpha = {n} is odd: (κ² − Δ)^(α/2) is then a half-integer power of a differential "
            "operator, which is non-local too (e.g. α = 1 in d = 1, ν = 1/2, the exponential "
            "covariance, has the operator (κ² − Δ)^(1/2)). Compactly supported test functions "
            "with autodiff handle only even α = 2, 4, ...; use the Laplacian eigenbasis "
            "(pinnprob.testfunctions.BoxEigenbasis), where the operator acts exactly for any α."
        )
    return n // 2


# ----------------------------------------------------------------------------------------
# autodiff route (any function)


def laplacian(fn: Callable[[Float[Array, " d"]], Array]) -> Callable[[Float[Array, " d"]], Array]:
    """x ↦ Δfn(x) = Σ_i ∂²fn/∂x_i² at one point x (d,), by forward-over-forward ``jvp``.

    ``fn`` maps (d,) to an array of any shape (a scalar, or K test functions at once);
    the result has the same shape. Nest it for Δ².
    """

    def lap(x):
        d = x.shape[-1]
        eye = jnp.eye(d, dtype=x.dtype)
        total = None
        for i in range(d):
            e = eye[i]

            def first(y, e=e):
                return jax.jvp(fn, (y,), (e,))[1]

            second = jax.jvp(first, (x,), (e,))[1]
            total = second if total is None else total + second
        return total

    return lap


def apply_adjoint(
    fn: Callable[[Float[Array, " d"]], Array],
    X: Float[ArrayLike, "n d"],
    kappa: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    alpha: float,
) -> Float[Array, "n *out"]:
    """L*fn = τ(κ² − Δ)^{α/2} fn at the points X (n, d), by autodiff; result (n, *out).

    ``fn`` maps one point (d,) to a scalar (or to an array of shape ``out``, e.g. K test
    functions at once). α must be a static even integer (2, 4, ...): the Matérn operator is
    then the polynomial τ Σ_m C(j, m) κ^{2(j−m)} (−Δ)^m in the Laplacian (j = α/2), which is
    self-adjoint, and each Laplacian is a trace of second derivatives (forward-mode ``jvp``),
    vmapped over X. κ and τ may be traced (differentiable) scalars. Raises ``ValueError`` for
    fractional or odd α (non-local operators — use ``BoxEigenbasis``).
    """
    j = adjoint_order(alpha)
    X = jnp.asarray(X)
    kappa = jnp.asarray(kappa)
    derivs = [fn]
    for _ in range(j):
        derivs.append(laplacian(derivs[-1]))

    def at(x):
        out = 0.0
        for m, g in enumerate(derivs):
            out = out + math.comb(j, m) * (-1.0) ** m * kappa ** (2 * (j - m)) * g(x)
        return tau * out

    return jax.vmap(at)(X)


# ----------------------------------------------------------------------------------------
# the bumps


def _bump_poly_derivatives(p: int, order: int) -> list[np.ndarray]:
    """Coefficients (increasing powers of t) of b^{(s)}(t), s = 0..order, b(t) = (1 − t²)^p."""
    coeffs = np.polynomial.polynomial.polypow([1.0, 0.0, -1.0], p)
    out = [coeffs]
    for _ in range(order):
        out.append(np.polynomial.polynomial.polyder(out[-1]))
    return out


def _polyval(coeffs: np.ndarray, t: Array) -> Array:
    """Horner evaluation of Σ_i coeffs[i] t^i."""
    out = jnp.zeros_like(t)
    for c in coeffs[::-1]:
        out = out * t + float(c)
    return out


class BumpTestFunctions(eqx.Module):
    """K tensor-product polynomial bumps ψ_k(x) = Π_i (1 − ((x_i − c_{k,i})/r_{k,i})²)_+^p.

    ``centers`` (K, d); ``radius`` a scalar, (K,) or (K, d) half-widths (stored as (K, d));
    ``power`` p, a static positive integer (p ≥ α needed for the adjoint of order α, p ≥ α+1
    recommended). ψ_k has value 1 at its centre and support Π_i [c_{k,i} − r_{k,i}, c_{k,i} + r_{k,i}].
    Call on points X (n, d) for Ψ (n, K).
    """

    centers: Float[Array, "K d"]
    radius: Float[Array, "K d"]
    power: int = eqx.field(static=True, default=5)

    def __init__(self, centers: Float[ArrayLike, "K d"], radius: Float[ArrayLike, "*r"], power: int = 5):
        centers = jnp.asarray(centers)
        if centers.ndim != 2:
            raise ValueError(f"centers must have shape (K, d), got {centers.shape}")
        K, d = centers.shape
        radius = jnp.asarray(radius, dtype=centers.dtype)
        if radius.ndim == 0:
            radius = jnp.full((K, d), radius)
        elif radius.shape == (K,):
            radius = jnp.broadcast_to(radius[:, None], (K, d))
        elif radius.shape == (K, d):
            pass
        else:
            raise ValueError(f"radius must be a scalar, (K,) = ({K},) or (K, d) = ({K}, {d}); got {radius.shape}")
        try:
            nonpositive = bool(jnp.any(radius <= 0))
        except jax.errors.ConcretizationTypeError:  # built under a transformation: no check
            nonpositive = False
        if nonpositive:
            raise ValueError("radius must be positive")
        if isinstance(power, bool) or int(power) != power or power < 1:
            raise ValueError(f"power must be a positive integer, got {power!r}")
        self.centers = centers
        self.radius = radius
        self.power = int(power)

    @classmethod
    def on_grid(
        cls,
        domain: Box,
        num_per_dim: int | Sequence[int],
        radius_factor: float = 1.0,
        power: int = 5,
    ) -> "BumpTestFunctions":
        """Bumps centred on an interior grid, every support inside the domain.

        Along an axis of length L with n = ``num_per_dim`` bumps the centres are
        L(i+1)/(n+1), i = 0..n−1 (spacing h = L/(n+1)), and the half-width is
        r = radius_factor · h with 0 < radius_factor ≤ 1, so each support lies in [0, L]
        (touching the boundary when radius_factor = 1): integration by parts has no
        boundary terms whatever the boundary condition. With radius_factor = 1 the
        support edges lie on the multiples of h, so
        ``grid_quadrature(domain, q*(n+1), "gauss", panels=n+1)`` is aligned with the
        kinks and integrates ψ_k · (smooth) to spectral accuracy. K = Π num_per_dim,
        ordered with the last axis fastest.
        """
        if not (0.0 < radius_factor <= 1.0):
            raise ValueError(
                f"radius_factor must be in (0, 1] so that every support lies inside the domain, got {radius_factor}"
            )
        d = domain.dim
        ns = (int(num_per_dim),) * d if isinstance(num_per_dim, (int, np.integer)) else tuple(int(n) for n in num_per_dim)
        if len(ns) != d or any(n < 1 for n in ns):
            raise ValueError(f"num_per_dim must be a positive int or {d} positive ints, got {num_per_dim!r}")
        hs = [L / (n + 1) for L, n in zip(domain.lengths, ns)]
        axes = [h * np.arange(1, n + 1) for h, n in zip(hs, ns)]
        grid = np.meshgrid(*axes, indexing="ij")
        centers = np.stack([g.ravel() for g in grid], axis=1)
        radius = np.broadcast_to(radius_factor * np.asarray(hs), centers.shape)
        return cls(jnp.asarray(centers), jnp.asarray(radius), power)

    @classmethod
    def covering(cls, domain: Box, num_per_dim: int, power: int = 3) -> "BumpTestFunctions":
        """(n + 1)^d bumps centred on the grid x_i = L·i/n, i = 0..n (boundary included), half-width
        h = L/n: a partition of the box whose boundary bumps are cut by the boundary. Those test
        the natural (Neumann) condition of a bilinear form, which interior bumps never see; use them
        with first-order weak forms only (no integration by parts beyond the first). Support edges
        lie on multiples of h, so ``grid_quadrature(domain, q*n, "gauss", panels=n)`` is aligned."""
        n = int(num_per_dim) - 1
        if n < 1:
            raise ValueError(f"num_per_dim must be ≥ 2, got {num_per_dim!r}")
        axes = [np.linspace(0.0, L, n + 1) for L in domain.lengths]
        grid = np.meshgrid(*axes, indexing="ij")
        centers = np.stack([g.ravel() for g in grid], axis=1)
        radius = np.broadcast_to(np.asarray([L / n for L in domain.lengths]), centers.shape)
        return cls(jnp.asarray(centers), jnp.asarray(radius), power)

    @property
    def size(self) -> int:
        return int(self.centers.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    # -- values ---------------------------------------------------------------------------

    def _scaled(self, X: Float[Array, "n d"]) -> Float[Array, "n K d"]:
        X = jnp.asarray(X)
        return (X[:, None, :] - self.centers[None]) / self.radius[None]

    def point(self, x: Float[Array, " d"]) -> Float[Array, " K"]:
        """(ψ_1(x), ..., ψ_K(x)) at a single point x (d,): the function autodiff differentiates."""
        t = (x[None, :] - self.centers) / self.radius
        return jnp.prod(jnp.clip(1.0 - t**2, 0.0, None) ** self.power, axis=-1)

    def __call__(self, X: Float[ArrayLike, "n d"]) -> Float[Array, "n K"]:
        """Ψ_ik = ψ_k(x_i), shape (n, K)."""
        t = self._scaled(X)
        return jnp.prod(jnp.clip(1.0 - t**2, 0.0, None) ** self.power, axis=-1)

    # -- the adjoint ----------------------------------------------------------------------

    def _check_power(self, j: int) -> None:
        if self.power < 2 * j:
            raise ValueError(
                f"power p = {self.power} < α = {2 * j}: the bump's derivatives up to order α − 1 "
                "must vanish on the edge of its support for integration by parts to have no "
                f"boundary terms; use power >= {2 * j} (>= {2 * j + 1} recommended)."
            )

    def adjoint(
        self,
        X: Float[ArrayLike, "n d"],
        kappa: Float[ArrayLike, ""],
        tau: Float[ArrayLike, ""],
        alpha: float,
        method: str = "closed",
    ) -> Float[Array, "n K"]:
        """(L*ψ_k)(x_i) = τ(κ² − Δ)^{α/2} ψ_k (x_i), shape (n, K), for even integer α (static).

        ``method="closed"`` (default) uses the exact derivatives of the polynomial bump:
        Δ^m ψ = Σ_{|β|=m} m!/β! Π_i r_i^{−2β_i} b^{(2β_i)}(t_i); ``method="autodiff"`` runs
        :func:`apply_adjoint` on :meth:`point` (generic, slower). Both are jit-able with α
        static and differentiable in κ, τ, centres and radii.
        """
        j = adjoint_order(alpha)
        self._check_power(j)
        # κ, τ as arrays so that the jitted kernels trace them instead of recompiling per value
        X, kappa, tau = jnp.asarray(X), jnp.asarray(kappa), jnp.asarray(tau)
        if method == "autodiff":
            return _adjoint_autodiff(self, X, kappa, tau, 2 * j)
        if method != "closed":
            raise ValueError(f"method must be 'closed' or 'autodiff', got {method!r}")
        return _adjoint_closed(self, X, kappa, tau, j)

    # -- Gram matrix ----------------------------------------------------------------------

    @eqx.filter_jit
    def gram(self, quad_points: Float[ArrayLike, "n d"], quad_weights: Float[ArrayLike, " n"]) -> Float[Array, "K K"]:
        """G_kl = ⟨ψ_k, ψ_l⟩ ≈ Σ_i w_i ψ_k(x_i) ψ_l(x_i): the covariance of (⟨W, ψ_k⟩)_k."""
        Psi = self(quad_points)
        return (Psi * jnp.asarray(quad_weights)[:, None]).T @ Psi

    @eqx.filter_jit
    def exact_gram(self) -> Float[Array, "K K"]:
        """G_kl = ⟨ψ_k, ψ_l⟩ on R^d, exactly: a product of 1-D integrals of polynomials
        over the overlap of the supports, each done by Gauss–Legendre with 2p + 1 nodes
        (exact for degree 4p). Equals the Gram on the domain when the supports lie inside it.
        """
        p = self.power
        tq, wq = np.polynomial.legendre.leggauss(2 * p + 1)
        tq = jnp.asarray(tq, self.centers.dtype)
        wq = jnp.asarray(wq, self.centers.dtype)
        G = 1.0
        for i in range(self.dim):
            c, r = self.centers[:, i], self.radius[:, i]
            lo = jnp.maximum((c - r)[:, None], (c - r)[None, :])
            hi = jnp.minimum((c + r)[:, None], (c + r)[None, :])
            half = jnp.clip(hi - lo, 0.0, None) / 2.0  # (K, K)
            x = (lo + hi)[..., None] / 2.0 + half[..., None] * tq  # (K, K, q)
            bk = jnp.clip(1.0 - ((x - c[:, None, None]) / r[:, None, None]) ** 2, 0.0, None) ** p
            bl = jnp.clip(1.0 - ((x - c[None, :, None]) / r[None, :, None]) ** 2, 0.0, None) ** p
            G = G * half * jnp.sum(wq * bk * bl, axis=-1)
        return G


def _compositions(m: int, d: int):
    """All β ∈ N^d with Σ β_i = m."""
    if d == 1:
        yield (m,)
        return
    for first in range(m + 1):
        for rest in _compositions(m - first, d - 1):
            yield (first,) + rest


# jitted kernels: one compilation per shape and order instead of op-by-op dispatch when
# called eagerly (inlined when the caller is itself jitted). Python ints are static.


@eqx.filter_jit
def _adjoint_autodiff(tf: BumpTestFunctions, X, kappa, tau, alpha: int):
    return apply_adjoint(tf.point, X, kappa, tau, alpha)


@eqx.filter_jit
def _adjoint_closed(tf: BumpTestFunctions, X, kappa, tau, j: int):
    """τ(κ² − Δ)^j ψ_k at X from the exact derivatives of the polynomial factors, (n, K)."""
    kappa = jnp.asarray(kappa)
    t = tf._scaled(X)  # (n, K, d)
    inside = jnp.abs(t) < 1.0
    ts = jnp.where(inside, t, 0.0)
    polys = _bump_poly_derivatives(tf.power, 2 * j)
    # D[s][i]: ∂_i^{2s} of the i-th factor, (n, K)
    D = [
        [jnp.where(inside[..., i], _polyval(polys[2 * s], ts[..., i]), 0.0) / tf.radius[None, :, i] ** (2 * s)
         for i in range(tf.dim)]
        for s in range(j + 1)
    ]
    out = 0.0
    for m in range(j + 1):
        lap_m = 0.0  # Δ^m ψ = Σ_{|β|=m} m!/β! Π_i ∂_i^{2β_i} ψ
        for beta in _compositions(m, tf.dim):
            term = math.factorial(m) / math.prod(math.factorial(b) for b in beta)
            for i, b in enumerate(beta):
                term = term * D[b][i]
            lap_m = lap_m + term
        out = out + math.comb(j, m) * (-1.0) ** m * kappa ** (2 * (j - m)) * lap_m
    return tau * out
