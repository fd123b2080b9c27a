"""A spectral generator's covariance at fixed sites for any θ in a box, from a few precomputed matrices.

For a generator with Ψ = Φ diag(a(θ)) (the spectral one) the field's covariance at n sites is
K(θ) = Φ diag(s(θ)) Φᵀ, s = a², which costs O(n² m) to form: at the few hundred sites of a
small data set with the thousands of modes that short ranges need, that product, not the Cholesky,
is a collapsed gradient's cost. Over a box of θ the vectors s(θ) span a space of low dimension
(the Matérn's spectra over a range of ranges and smoothnesses: about 20 to a relative error of
1e-5). With an orthonormal basis v₁..v_R of that span (an SVD of s over a design of θ; the
reduced-basis method, e.g. Quarteroni, Manzoni & Negri 2016, *Reduced Basis Methods for PDEs*,
ch. 6) and the matrices B_r = Φ diag(v_r) Φᵀ computed once,

    K(θ) ≈ Σ_r c_r(θ) B_r,   c = the projection of s(θ) on the basis,

at O(m R + R n²) per θ. The error is bounded, not estimated: for e = s − Σ c_r v_r,
‖Φ diag(e) Φᵀ‖_* ≤ Σ_k |e_k| ‖φ_k‖² and ‖K‖_* = Σ_k s_k ‖φ_k‖² (‖·‖_* the nuclear norm, the trace
for K), so the relative nuclear-norm error at the sites is at most Σ|e_k| w_k / Σ s_k w_k with
w_k = ‖φ_k‖² over the sites. :class:`SiteCovariance` measures this bound on θs it was not built
from, and picks the smallest rank that meets a tolerance (rounded up to a multiple of four).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["SiteCovariance", "site_covariance_design"]

RANK_MULTIPLE = 4  # SiteCovariance.build rounds its rank up to a multiple of this


def site_covariance_design(theta_bounds, num: int, skip: int = 0) -> np.ndarray:
    """(num, p) points of θ in the box ``theta_bounds`` (p, 2; an axis with equal bounds is held there):
    the box's corners first (when ``skip`` is 0), then a Halton sequence (unscrambled, so
    deterministic) over the free axes from its ``skip``-th point."""
    from scipy.stats import qmc

    b = np.asarray(theta_bounds, np.float64)
    free = np.flatnonzero(b[:, 1] > b[:, 0])
    pts = []
    if skip == 0 and free.size:
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * free.size, indexing="ij")).reshape(free.size, -1).T
        pts.append(corners)
    if free.size:
        h = qmc.Halton(free.size, scramble=False)
        h.fast_forward(1 + skip)  # the sequence's first point is the origin, a corner
        pts.append(h.random(num))
        u = np.concatenate(pts)[:num]
    else:
        u = np.zeros((1, 0))
    out = np.repeat(b[:, :1].T, len(u), axis=0)
    out[:, free] = b[free, 0] + u * (b[free, 1] - b[free, 0])
    return out


# module-level and jitted on their arguments (the generator too: its tables are not compiled in as
# constants), so that fits of the same shapes (cross-validation folds) reuse one compilation
@eqx.filter_jit
def _squared_amplitudes(generator, thetas):
    return jax.lax.map(lambda t: generator.branch(t) ** 2, thetas, batch_size=64)


@jax.jit
def _blocks(Phi, V):
    return jax.lax.map(lambda v: (Phi * v) @ Phi.T, V.T)


def _equal_columns(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(representatives, inverse) of the distinct columns of s: s[:, reps][:, inverse] == s. Columns are
    keyed by one fixed random projection (a sort of m numbers, not of m columns) and the grouping is
    then checked exactly; a clash, if ever, falls back to NumPy's column-wise unique."""
    key = np.random.default_rng(0).standard_normal(s.shape[0]) @ s
    _, reps, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if not np.array_equal(s[:, reps][:, inverse], s):
        _, reps, inverse = np.unique(s, axis=1, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
    return reps, inverse


class SiteCovariance(eqx.Module):
    """K(θ) = Φ diag(s) Φᵀ at fixed sites for squared amplitudes s (m,) near the span of a reduced basis
    (module notes): ``self(s)`` is (n, n) in O(m R + R n²).

    Build it with :meth:`build`. ``rank`` is R and ``error`` the largest relative nuclear-norm error
    bound measured on θs outside the build design."""

    blocks: Float[Array, "R n n"]  # B_r = Φ diag(v_r) Φᵀ
    # modes whose amplitudes are equal at every θ (equal eigenvalues) form one group: the basis lives
    # on the U groups, each represented by one of its modes
    representatives: Int[Array, " U"]
    basis: Float[Array, "U R"]  # the v_r in the site-weighted coordinates √W ⊙ s (orthonormal columns)
    sqrt_weights: Float[Array, " U"]  # √W_u, W_u = Σ_{k in u} ‖φ_k‖² over the sites
    num_modes: int = eqx.field(static=True)  # m
    error: float = eqx.field(static=True)

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def coefficients(self, s: Float[Array, " m"]) -> Float[Array, " R"]:
        """c: the projection of s on the basis (weighted least squares, exact for s in the span)."""
        return self.basis.T @ (self.sqrt_weights * s[self.representatives])

    def __call__(self, s: Float[Array, " m"]) -> Float[Array, "n n"]:
        return jnp.tensordot(self.coefficients(s), self.blocks, axes=1)

    @classmethod
    def build(cls, generator, features, theta_bounds, *, tol: float = 1e-4, max_rank: int = 64,
              num_design: int = 256, num_check: int = 128) -> "SiteCovariance":
        """For a diagonal generator (``branch(θ)`` = a(θ), (m,)) and its dense trunk ``features`` Φ (n, m)
        at the sites, over θ in ``theta_bounds`` (p, 2, natural coordinates): an SVD of s = a² at
        ``num_design`` points (:func:`site_covariance_design`), each row scaled to unit site trace so
        that every θ weighs alike, in the coordinates √w ⊙ s; the smallest multiple of
        :data:`RANK_MULTIPLE` ≤ ``max_rank`` whose error bound on ``num_check`` further points is ≤
        ``tol`` (else the smallest rank that meets it, else ``max_rank``: check :attr:`error`). Costs
        ``num_design + num_check`` branch evaluations, an SVD and R n² m for the blocks."""
        if int(max_rank) != max_rank or max_rank < 1:
            raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
        Phi = jnp.asarray(features)
        n, m = Phi.shape
        w = np.asarray(jnp.sum(Phi**2, 0), np.float64)
        thetas = np.concatenate([site_covariance_design(theta_bounds, num_design),
                                 site_covariance_design(theta_bounds, num_check, skip=num_design)])
        s = np.asarray(_squared_amplitudes(generator, jnp.asarray(thetas, Phi.dtype)), np.float64)
        s = s / (s @ w)[:, None]  # unit site trace: every θ weighs alike
        # groups of modes equal at every design point (equal eigenvalues): Σ_k e_k² w_k = Σ_u e_u² W_u, so
        # the SVD on the groups is the SVD on the modes, U/m of its cost
        reps, inverse = _equal_columns(s)
        s = s[:, reps]
        W = np.bincount(inverse, weights=w, minlength=len(reps))
        sW = np.sqrt(W)
        S, check = s[:-num_check], s[-num_check:]
        _, sv, Vt = np.linalg.svd(S * sW, full_matrices=False)
        Cw = check * sW  # (num_check, U), each row's Σ s_u W_u = 1
        def bound(R):
            V = Vt[:R].T
            E = Cw - (Cw @ V) @ V.T  # e ⊙ √W
            return float(np.max(np.abs(E) @ sW))  # Σ|e_u| W_u per check point (its Σ s_u W_u is 1)

        top = min(int(max_rank), len(sv))
        R = next((r for r in range(1, top + 1) if bound(r) <= tol), top)
        # the rank rounded up to a multiple of RANK_MULTIPLE, so that fits of similar data
        # (cross-validation folds) share the blocks' shape, hence compilations; the bound (a weighted
        # L1 norm of a projection's residual) need not fall with the rank, so the next multiples are
        # tried and, if none meets the tolerance, R itself is kept
        R = next((r for r in range(-(-R // RANK_MULTIPLE) * RANK_MULTIPLE, top + 1, RANK_MULTIPLE)
                  if bound(r) <= tol), R)
        err = bound(R)
        V = Vt[:R].T
        # v_r per group = (√W ⊙ v_r)/√W, then per mode; a group that vanishes at every site adds nothing to K
        vr = np.divide(V, sW[:, None], out=np.zeros_like(V), where=sW[:, None] > 0)[inverse]
        vj = jnp.asarray(vr, Phi.dtype)
        blocks = _blocks(Phi, vj)
        return cls(blocks=blocks, representatives=jnp.asarray(reps, jnp.int32), basis=jnp.asarray(V, Phi.dtype),
                   sqrt_weights=jnp.asarray(sW, Phi.dtype), num_modes=m, error=err)

    def error_at(self, s: Float[Array, " m"]) -> Float[Array, ""]:
        """The relative nuclear-norm error bound for one s (module notes)."""
        sW, su = self.sqrt_weights, s[self.representatives]
        e = sW * su - self.basis @ self.coefficients(s)
        return jnp.sum(jnp.abs(e) * sW) / jnp.sum(su * sW**2)
