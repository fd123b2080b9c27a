"""Gaussian observations with a Gaussian generator: the field integrated out, and recovered afterwards.

Two exact ways to evaluate N(y | loc, SSᵀ + s²I) with S = σΨ(θ) (n × m):

* from S itself: a dense Cholesky (n ≤ m) or Woodbury with SᵀS (O(n m²) per evaluation);
* from the Gram matrix G = ΦᵀΦ of the trunk, computed once per set of sites, when the generator's
  basis is the trunk scaled per column (Ψ = Φ diag(a(θ)), the spectral generator): SᵀS =
  σ² diag(a) G diag(a), so an evaluation costs O(n m) for Φᵀ(y − loc) plus O(m³/3), however many
  sites there are. :func:`gram` builds G; :func:`collapsed_cost` says which way is cheaper;
* for the same generators, from a :class:`~pinnprob.inference.site_covariance.SiteCovariance`
  built once for the sites: σ²ΨΨᵀ as Σ_r c_r(θ) B_r from R precomputed n × n matrices, then a dense
  Cholesky (O(R n² + n³/3), whatever m; its error bound is measured when it is built).

The Gram matrix and the site covariance cost something once; given the number of evaluations a fit
expects (:func:`~pinnprob.inference.runners.expected_evaluations`), :func:`collapsed_cost` spreads
that over them (:func:`site_covariance_build_cost`: calibrated, see the constants' comment).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve, solve_triangular
from jaxtyping import Array, Float
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample

from pinnprob.generators.base import AbstractDiagonalGenerator
from pinnprob.inference.distribution import GenerativeField, _dense_gaussian_logpdf, _lowrank_gaussian_logpdf
from pinnprob.inference.linalg import cholesky, inverse_diagonal
from pinnprob.testfunctions.eigen import SeparableFeatures

__all__ = ["CollapsedGaussian", "DataMoments", "GramReference", "conditional_latent", "data_moments", "gram",
           "gram_precision", "gram_reference", "moments_perturbation", "pcg_tolerance", "perturbation",
           "perturbed_latent", "perturbed_solve", "woodbury_terms",
           "collapsed_cost", "collapse_pays", "latent_too_stiff", "LATENT_STIFF_SITES", "site_covariance_build_cost"]


def gram(features, progress_bar: bool = False) -> Float[Array, "m m"]:
    """G = ΦᵀΦ of the trunk features at the sites, (n, m) dense or separable (θ-independent; compute it
    once): separable features sum it themselves (:meth:`~pinnprob.testfunctions.SeparableFeatures.gram`:
    from harmonic moments for a box eigenbasis, else block by block with a bar if ``progress_bar``);
    dense ones in one product."""
    if isinstance(features, SeparableFeatures):
        return features.gram(progress_bar)
    return features.T @ features


# The one-off cost of the site-covariance path, in the flops of collapsed_cost's per-evaluation counts
# (SiteCovariance.build: 384 branch evaluations over a Halton design of the θ box, an SVD of 256 of
# them, then the R blocks Φ diag(v_r) Φᵀ, R n² m; in a fresh process, or at new shapes, also the
# compilation of the first and last steps):  SITE_COVARIANCE_FIXED + SITE_COVARIANCE_PER_MODE · m + R n² m.
# Calibrated on a 2-core CPU (float32, the shipped Matérn prior, one build and one jitted collapsed
# value-and-gradient, each size in a fresh process; R the rank the build found):
#     n      m      R   build, cold / warm   gradient, modes / site cov.   break-even gradients
#    40     193     7     0.58 s / 0.006 s      0.41 ms / 0.38 ms               21 800
#    60   3 973    14     0.73 s / 0.098 s      2.8 ms  / 1.1 ms                   430
#   155  10 796    17     1.05 s / 0.29 s       35 ms   / 0.63 ms                   31
# 1 000   3 973    14     1.28 s / 0.68 s       234 ms  / 48 ms                      7
# 1 000  10 796    17     2.90 s / 2.22 s       474 ms  / 51 ms                      7
# So ~0.65 s of compilation per build, ~23 µs per mode (the design's branch evaluations and SVD) and
# the blocks' batched product at ~90·10⁹ multiply-adds/s. A dense-path gradient ran at 5-23·10⁹ of
# collapsed_cost's flops per second: at 10¹⁰ the fixed part is 7·10⁹ flops and 2.5·10⁵ per mode;
# R n² m, counted at full weight, overstates the blocks 4-9× (the model's break-even at n = 1 000 is
# ~25 gradients, not 7: immaterial for any fit). The model's break-even for the rows above, at its
# assumed R = 24: 26 500, 590, 62, 26, 25 evaluations. End to end (fit, NUTS 15 + 10 draws, 3 fields
# recovered, ~380 evaluations by expected_evaluations): 40 sites, 193 modes, ν fixed: 15.1 s by the
# modes, 16.0 s with a site covariance (the model: modes); 60 sites, the full prior, ν free:
# 22.4 s by the modes, 17.6 s with a site covariance (the model: site covariance).
SITE_COVARIANCE_FIXED = 7e9
SITE_COVARIANCE_PER_MODE = 2.5e5


# The one-off cost of ΦᵀΦ on the Gram path (SeparableFeatures.gram, from harmonic moments), in the same
# flops: measured on the 2-core CPU in float64 (the other core busy) at n, m = 2·10⁴, 2 883 and
# 104 494, 8 357: the moments 2.4-4·10⁻⁹ s per site × mode, the assembly 2·10⁻⁸ s per pair of modes;
# at collapsed_cost's ~10¹⁰ flops per second. (Summed over the sites it was n m² multiply-adds.)
GRAM_PER_SITE_MODE = 30.0
GRAM_PER_MODE_PAIR = 200.0


def site_covariance_build_cost(n: int, m: int, rank: int) -> float:
    """The one-off cost, in flops of :func:`collapsed_cost`'s kind, of building a
    :class:`~pinnprob.inference.site_covariance.SiteCovariance` of rank ``rank`` at ``n`` sites with
    ``m`` modes: a fixed part (mostly compilation), a part per mode (the design's branch evaluations
    and SVD) and R n² m for its blocks (calibrated: the constants' comment)."""
    return SITE_COVARIANCE_FIXED + SITE_COVARIANCE_PER_MODE * m + rank * n * n * m


def collapsed_cost(n: int, m: int, with_gram: bool, rank: int | None = None,
                   evaluations: float | None = None) -> tuple[float, str]:
    """(flops, path) of one collapsed evaluation by the cheapest path: 'dense' (n²m + n³/3), 'gram'
    (nm + m³/3, after a one-off ΦᵀΦ from harmonic moments, ``GRAM_PER_SITE_MODE``·nm +
    ``GRAM_PER_MODE_PAIR``·m²), 'woodbury' (nm² + m³/3), or, given the ``rank`` R of a site
    covariance (spectral generators; :class:`~pinnprob.inference.site_covariance.SiteCovariance`),
    'reduced' (mR + Rn² + n³/3, after a one-off :func:`site_covariance_build_cost`).

    ``evaluations``: how many log-density evaluations the fit is expected to make
    (:func:`~pinnprob.inference.runners.expected_evaluations`); each path's one-off cost is spread
    over them, so that a short fit does not build what it will not repay. None: a long fit, the
    one-off costs left out (the per-evaluation comparison alone)."""
    options = {"dense": n * n * m + n**3 / 3}
    once = {}
    if with_gram:
        options["gram"] = n * m + m**3 / 3
        once["gram"] = GRAM_PER_SITE_MODE * n * m + GRAM_PER_MODE_PAIR * m * m
    else:
        options["woodbury"] = n * m * m + m**3 / 3
    if rank is not None:
        options["reduced"] = m * rank + rank * n * n + n**3 / 3
        once["reduced"] = site_covariance_build_cost(n, m, rank)
    if evaluations is not None:
        options = {k: v + once.get(k, 0.0) / max(float(evaluations), 1.0) for k, v in options.items()}
    path = min(options, key=options.get)
    return options[path], path


def _uses_gram(field: GenerativeField, G) -> bool:
    if G is None:
        return False
    if not isinstance(field.generator, AbstractDiagonalGenerator):
        raise TypeError("a Gram matrix applies only to generators with Ψ = Φ diag(branch) (the spectral one)")
    if field.batch_shape != ():
        raise ValueError("the Gram path takes an unbatched field")
    m = field.latent_dim
    if G.shape != (m, m):
        raise ValueError(f"gram must have shape ({m}, {m}), got {G.shape}")
    return collapsed_cost(field.event_shape[0], m, True)[1] == "gram"


class CollapsedGaussian(dist.Distribution):
    """y = loc + f + ε, f ~ GenerativeField (Gaussian), ε ~ N(0, noise² I), with f integrated out:
    y ~ N(loc, σ²ΨΨᵀ + noise² I). Event shape ``(n,)``.

    ``log_prob`` by a dense Cholesky (O(n² m + n³)) when n ≤ m, by Woodbury (O(n m² + m³))
    otherwise; given ``gram`` = ΦᵀΦ (:func:`gram`, spectral generators), by Woodbury on
    σ² diag(a) G diag(a) (O(n m + m³)) whenever that is cheaper than the dense way; given
    ``site_covariance`` (a :class:`~pinnprob.inference.site_covariance.SiteCovariance` of the same
    sites, spectral generators), by a dense Cholesky of σ²ΨΨᵀ formed from it (O(R n² + n³)),
    which then takes precedence."""

    arg_constraints = {"loc": constraints.real_vector, "noise": constraints.positive}
    support = constraints.real_vector
    # everything it holds (NumPyro's pytree contract)
    pytree_data_fields = ("field", "loc", "noise", "gram", "site_covariance")

    def __init__(self, field: GenerativeField, loc, noise, *, gram=None, site_covariance=None, validate_args=None):
        if not field.gaussian:
            raise TypeError("the collapsed likelihood needs a Gaussian generator")
        self.field, self.loc, self.noise = field, jnp.asarray(loc), jnp.asarray(noise)
        self.gram = None if gram is None else jnp.asarray(gram)
        _uses_gram(field, self.gram)  # validates gram's shape and the generator's kind, before any work
        _check_site_covariance(field, site_covariance)
        self.site_covariance = site_covariance
        super().__init__(batch_shape=(), event_shape=field.event_shape, validate_args=validate_args)

    @property
    def _gram_path(self) -> bool:
        """Whether log_prob goes through the Gram matrix (from static shapes: survives tree_unflatten)."""
        return _uses_gram(self.field, self.gram)

    @property
    def mean(self):
        return self.loc

    def sample(self, key, sample_shape=()):
        k1, k2 = jax.random.split(key)
        f = self.field.sample(k1, sample_shape)
        return self.loc + f + self.noise * jax.random.normal(k2, f.shape)

    @validate_sample
    def log_prob(self, value):
        return self._log_prob(value)

    @jax.jit  # one program, not op by op when NumPyro evaluates eagerly (distribution.py)
    def _log_prob(self, value):
        # the jitter of the field is negligible next to the noise and is left out here
        r = value - self.loc
        if self.site_covariance is not None:
            K = self.site_covariance(_scales(self.field) ** 2)
            s2 = self.noise**2 + _site_variance(self.field)
            return _dense_gaussian_logpdf(r, K + s2 * jnp.eye(K.shape[0]))
        if not self._gram_path:  # the field's own site variance goes with the noise
            return _lowrank_gaussian_logpdf(r, self.field.basis(), self.noise**2 + self.field.site_variance())
        return _gram_gaussian_logpdf(r, self.field.features, _scales(self.field), self.gram,
                                     self.noise**2 + _site_variance(self.field))


def _check_site_covariance(field: GenerativeField, sc) -> None:
    if sc is None:
        return
    if not isinstance(field.generator, AbstractDiagonalGenerator):
        raise TypeError("a site covariance applies only to generators with Ψ = Φ diag(branch) (the spectral one)")
    if field.batch_shape != ():
        raise ValueError("the site-covariance path takes an unbatched field")
    n, m = field.event_shape[0], field.latent_dim
    if sc.blocks.shape[1:] != (n, n) or sc.num_modes != m:
        raise ValueError(f"the site covariance is for {sc.blocks.shape[1]} sites and {sc.num_modes} modes; "
                         f"this field has {n} and {m}")


def _scales(field: GenerativeField) -> Float[Array, " m"]:
    """d = σ a(θ): the per-column scales of S = Φ diag(d) (diagonal-branch generators)."""
    return field.sigma * field.generator.branch(field.theta)


def _site_variance(field: GenerativeField):
    """σ² × the tail variance of a diagonal-branch generator: the same at every site (so the Gram path
    keeps a scalar diagonal), shape ``batch_shape``."""
    return field.site_variance()[..., 0]


def _gram_gaussian_logpdf(r, Phi, d, G, eps):
    """log N(r | 0, Φ diag(d²) Φᵀ + eps I) from G = ΦᵀΦ, by Woodbury:
    quad = (rᵀr − bᵀ cap⁻¹ b)/eps, b = d ⊙ Φᵀr, cap = diag(d) G diag(d) + eps I;
    log det = (n − m) log eps + log det cap. Φ dense or separable, r (..., n). G is data: no gradient
    flows to it (:func:`woodbury_terms`)."""
    n, m = Phi.shape
    c = jnp.vectorize(lambda ri: ri @ Phi, signature="(n)->(m)")(r)  # Φᵀr, (..., m)
    q = woodbury_terms(c.reshape(-1, m), jnp.sum(r**2, -1).reshape(-1), d, eps, G).reshape(c.shape[:-1])
    return q - 0.5 * ((n - m) * jnp.log(eps) + n * math.log(2 * math.pi))


@jax.custom_vjp
def woodbury_terms(c, rr, d, eps, G):
    """−½[(rr − bᵀcap⁻¹b)/eps + log det cap] per row, shape (k,): c = Φᵀr (k, m), rr = rᵀr (k,), d (m,),
    eps a scalar, G = ΦᵀΦ (m, m); b = d ⊙ c, cap = diag(d) G diag(d) + eps I.

    Its gradient is written out (below) rather than left to JAX's reverse mode through the Cholesky
    factor, which costs about 7× the factorisation (two m × m triangular solves against the factor's
    cotangent): the log determinant's derivative in d needs only diag(cap⁻¹), since
    (cap⁻¹ diag(d) G)_ii = (1 − eps (cap⁻¹)_ii) / d_i, and the quadratic form's a few products with G.
    A value and gradient then cost the factorisation and diag(cap⁻¹)
    (:func:`~pinnprob.inference.linalg.inverse_diagonal`). G is data (ΦᵀΦ of
    fixed sites): its cotangent is zero."""
    return _woodbury_fwd(c, rr, d, eps, G)[0]


def _woodbury_fwd(c, rr, d, eps, G):
    m = d.shape[0]
    cap = d[:, None] * G * d[None, :] + eps * jnp.eye(m, dtype=G.dtype)
    L = cholesky(cap)
    b = d * c
    u = solve_triangular(L, b.T, lower=True)  # (m, k): L⁻¹b
    quad = (rr - jnp.sum(u**2, 0)) / eps
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (quad + logdet), (c, rr, d, eps, G, L, u)


def _woodbury_bwd(res, g):
    c, rr, d, eps, G, L, u = res
    m = d.shape[0]
    w = solve_triangular(L.T, u, lower=False).T  # (k, m): cap⁻¹b
    cinv_diag = inverse_diagonal(L)  # diag(cap⁻¹) = diag(L⁻ᵀL⁻¹)
    gsum = jnp.sum(g)
    Gdw = (d * w) @ G  # (k, m): rows G(d ⊙ w_j) (G symmetric)
    # d/dd of ½ bᵀcap⁻¹b/eps (per row) and of −½ log det cap (once per row's cotangent)
    safe = jnp.where(d > 0, d, 1.0)
    d_logdet = jnp.where(d > 0, (1.0 - eps * cinv_diag) / safe, 0.0)
    d_bar = jnp.sum(g[:, None] * w * (c - Gdw), 0) / eps - gsum * d_logdet
    c_bar = g[:, None] * d * w / eps
    rr_bar = -g / (2.0 * eps)
    bw = jnp.sum(u**2, 0)  # bᵀcap⁻¹b
    ww = jnp.sum(w**2, 1)
    eps_bar = jnp.sum(g * (-0.5) * (-(rr - bw) / eps**2 + ww / eps)) - 0.5 * gsum * jnp.sum(cinv_diag)
    return c_bar, rr_bar, d_bar, eps_bar, jnp.zeros_like(G)


woodbury_terms.defvjp(_woodbury_fwd, _woodbury_bwd)


def gram_precision(field: GenerativeField, gram,
                   noise) -> tuple[Float[Array, "m m"], Float[Array, " m"], Float[Array, ""]]:
    """(P, d, s) of z | y on the Gram path: P = I + diag(d) G diag(d) the posterior precision of the
    latent, d = σa(θ)/s the whitened column scales, s² = noise² + the field's tail variance."""
    d, s = _whitened_scales(field, noise)
    return d[:, None] * gram * d[None, :] + jnp.eye(field.latent_dim, dtype=gram.dtype), d, s


def _whitened_scales(field: GenerativeField, noise):
    """(d, s): s² = noise² + the field's tail variance (the same at each site), d = σa(θ)/s."""
    s = jnp.sqrt(noise**2 + _site_variance(field))
    return _scales(field) / s, s


def conditional_latent(key, field: GenerativeField, resid, noise, gram=None, site_covariance=None,
                       with_mean: bool = False):
    """One exact draw of z | y for y − mean = σΨz + ε, z ~ N(0, I_m), ε ~ N(0, noise² I); with
    ``with_mean``, (the draw, E[z | y]), the mean from the same factorisation.

    Without ``gram``, by Matheron's rule (O(n² m + n³)): z* = z + Sᵀ(SSᵀ + noise² I)⁻¹(resid − Sz − noise ε),
    S = σΨ; with ``site_covariance`` (spectral generators), SSᵀ comes from it and S z, Sᵀw from the
    trunk (O(n m + R n² + n³); the draw is exact for the model that the likelihood evaluated). With
    ``gram`` = ΦᵀΦ (spectral generators), when cheaper, from the posterior precision
    P = I + SᵀS/noise² (:func:`gram_precision`, O(n m + m³)): z* = P⁻¹Sᵀresid/noise² + L⁻ᵀη, LLᵀ = P,
    η ~ N(0, I). (Many draws at many modes: :func:`perturbed_latent`.)"""
    n, m = field.event_shape[0], field.latent_dim
    k1, k2 = jax.random.split(key)
    if _uses_gram(field, None if gram is None else jnp.asarray(gram)):
        P, d, s = gram_precision(field, gram, noise)
        L = cholesky(P)
        mu = cho_solve((L, True), d * (jnp.asarray(resid) @ field.features) / s)  # Φᵀresid, dense or separable Φ
        draw = mu + solve_triangular(L.T, jax.random.normal(k1, (m,)), lower=False)
        return (draw, mu) if with_mean else draw
    z = jax.random.normal(k1, (m,))
    e = jax.random.normal(k2, (n,))
    s2 = noise**2 + field.site_variance()  # (n,): the noise and the field's part below its resolution
    if site_covariance is not None:
        _check_site_covariance(field, site_covariance)
        d, Phi = _scales(field), field.features
        C = site_covariance(d**2) + jnp.diag(s2 * jnp.ones(n))
        S_T = lambda w: d * (w @ Phi)  # noqa: E731  Sᵀw, Φ dense or separable
        Sz = Phi @ (d * z)
    else:
        S = field.basis()
        C = S @ S.T + jnp.diag(s2 * jnp.ones(n))
        S_T = lambda w: S.T @ w  # noqa: E731
        Sz = S @ z
    L = jnp.linalg.cholesky(C)
    rhs = resid - Sz - jnp.sqrt(s2) * e
    if not with_mean:
        return z + S_T(cho_solve((L, True), rhs))
    w = cho_solve((L, True), jnp.stack([rhs, jnp.asarray(resid, rhs.dtype)], 1))  # both against one factor
    return z + S_T(w[:, 0]), S_T(w[:, 1])


# perturbed_latent's conjugate gradients stop at this relative residual (float64; float32: 1e-5) or
# after PCG_MAXITER steps
PCG_TOL = 1e-10
PCG_MAXITER = 200


class GramReference(NamedTuple):
    """The posterior precision P_ref = I + diag(d_ref) G diag(d_ref) at reference parameters, as its
    Cholesky ``factor`` (m, m) and its whitened column ``scales`` d_ref (m,): what
    :func:`perturbed_latent` preconditions with."""

    factor: Float[Array, "m m"]
    scales: Float[Array, " m"]


def gram_reference(field: GenerativeField, gram, noise) -> GramReference:
    """:class:`GramReference` at ``field``'s parameters and ``noise`` (one m³/3 factorisation)."""
    P, d, _ = gram_precision(field, gram, noise)
    return GramReference(cholesky(P), d)


def pcg_tolerance(dtype) -> float:
    """The relative residual at which :func:`perturbed_latent` stops: PCG_TOL in float64, 1e-5 in float32."""
    return PCG_TOL if jnp.dtype(dtype) == jnp.float64 else 1e-5


def perturbed_latent(key, field: GenerativeField, resid, noise, gram,
                     reference: GramReference) -> tuple[Float[Array, " m"], Float[Array, ""]]:
    """(z*, relative residual) — a draw of z | y on the Gram path (as :func:`conditional_latent`) by
    perturbation (Papandreou & Yuille 2010): z* = P⁻¹(diag(d)Φᵀ(resid/s + ε) + η), ε ~ N(0, I_n),
    η ~ N(0, I_m), whose law is N(P⁻¹ diag(d)Φᵀresid/s, P⁻¹), with P, d, s of :func:`gram_precision`:
    :func:`perturbation` then :func:`perturbed_solve` (apart, so that a batch of draws can form the
    right-hand sides a few at a time and solve them all at once)."""
    _uses_gram(field, gram)
    return perturbed_solve(field, perturbation(key, field, resid, noise), noise, gram, reference)


def perturbation(key, field: GenerativeField, resid, noise, with_mean: bool = False) -> Float[Array, " m"]:
    """b = diag(d)Φᵀ(resid/s + ε) + η, ε ~ N(0, I_n), η ~ N(0, I_m) (d, s of :func:`gram_precision`):
    the right-hand side of a :func:`perturbed_latent` draw. O(n m) (Φ dense or separable). With
    ``with_mean``, (b, b₀), b₀ = diag(d)Φᵀresid/s its mean, whose solve P⁻¹b₀ is E[z | y]."""
    n = field.event_shape[0]
    k1, k2 = jax.random.split(key)
    resid = jnp.asarray(resid)
    d, s = _whitened_scales(field, noise)
    eta = jax.random.normal(k1, (field.latent_dim,), resid.dtype)
    eps = jax.random.normal(k2, (n,), resid.dtype)
    if not with_mean:
        return d * ((resid / s + eps) @ field.features) + eta
    proj = jax.vmap(lambda v: v @ field.features)(jnp.stack([resid / s, eps]))  # both in one pass over Φ
    b0 = d * proj[0]
    return b0 + d * proj[1] + eta, b0


class DataMoments(NamedTuple):
    """Φᵀ of a data set's fixed vectors and a Cholesky factor of G = ΦᵀΦ (jittered at a factor's own
    rounding level), with which the right-hand side of a perturbation draw costs O(m²) instead of O(n m)
    (:func:`moments_perturbation`)."""

    y: Float[Array, " m"]  # Φᵀy
    ones: Float[Array, " m"]  # Φᵀ1
    covariates: Float[Array, "m p"]  # ΦᵀZ (p = 0: none)
    gram_factor: Float[Array, "m m"]  # L, LLᵀ = G + jitter I
    jitter: Float[Array, ""]  # δ (an array: a traced leaf under jit, not a compiled-in constant)


def data_moments(features, gram, y, Z=None) -> DataMoments | None:
    """:class:`DataMoments` of the data ``y`` (n,) and covariates ``Z`` (n, p) or None at the trunk
    ``features`` (n, m) with G = ``gram``: one m³/3 factorisation and (p + 2) products with Φᵀ.

    G is often singular to rounding: the modes concentrated where there are no sites (the box's margin,
    gaps in the data: Slepian's concentration) have ΦᵀΦ ≈ 0 (on the satellite benchmark, 1 295 of
    5 502 directions), and a Cholesky factor of a singular G carries a backward error of order
    m ε max_k G_kk anyway. So the factor is of G + δI, δ = m ε max_k G_kk; the draws' right-hand sides
    then have covariance P + δ diag(d)² instead of P = I + diag(d) G diag(d) (at 10⁵ sites in float64,
    δ d² ~ 10⁻⁷). Float64 only: in float32 that δ is a few 10⁻⁴ of G, and None is returned, as when G
    + δI has no factor (not positive semi-definite); the draws then form Φᵀε themselves
    (:func:`perturbation`). Reads the factor back."""
    G = jnp.asarray(gram)
    if G.dtype != jnp.float64:
        return None
    n, m = features.shape
    jitter = m * jnp.finfo(G.dtype).eps * jnp.max(jnp.diagonal(G))
    L = cholesky(G + jitter * jnp.eye(G.shape[0], dtype=G.dtype))
    if not bool(jnp.all(jnp.isfinite(jnp.diagonal(L)))):
        return None
    y = jnp.asarray(y)
    Z = jnp.zeros((n, 0), y.dtype) if Z is None else jnp.asarray(Z, y.dtype)
    cov = jax.lax.map(lambda v: v @ features, Z.T).T if Z.shape[1] else jnp.zeros((L.shape[0], 0), y.dtype)
    return DataMoments(y @ features, jnp.ones_like(y) @ features, cov, L, jitter)


def moments_perturbation(key, field: GenerativeField, moments: DataMoments, intercept, beta, noise,
                         with_mean: bool = False) -> Float[Array, " m"]:
    """:func:`perturbation` for resid = y − intercept − Zβ from the data's :class:`DataMoments`:
    Φᵀresid = Φᵀy − intercept Φᵀ1 − (ΦᵀZ)β, and Φᵀε (ε ~ N(0, I_n)) drawn as Lξ, ξ ~ N(0, I_m), whose
    law N(0, G + δI) is Φᵀε's to G's rounding (:func:`data_moments`). O(m²). With ``with_mean``,
    (b, b₀) as :func:`perturbation`."""
    m = field.latent_dim
    k1, k2 = jax.random.split(key)
    d, s = _whitened_scales(field, noise)
    dtype = moments.y.dtype
    resid = moments.y - intercept * moments.ones - moments.covariates @ jnp.asarray(beta, dtype)
    b0 = d * resid / s
    b = b0 + d * (moments.gram_factor @ jax.random.normal(k2, (m,), dtype)) + jax.random.normal(k1, (m,), dtype)
    return (b, b0) if with_mean else b


def perturbed_solve(field: GenerativeField, b, noise, gram,
                    reference: GramReference) -> tuple[Float[Array, " m"], Float[Array, ""]]:
    """(P⁻¹b, relative residual ‖Pz − b‖/‖b‖), P of :func:`gram_precision`, by conjugate gradients
    (JAX's) to :func:`pcg_tolerance`, preconditioned by the ``reference`` precision at nearby
    parameters scaled to these: with R = diag(d / d_ref), P = R P_ref R + (I − R²), and M = R P_ref R
    leaves M⁻¹P = I + M⁻¹(I − R²), whose eigenvalues lie within max_k |1 − r_k²| / r_k² of 1
    (M ⪰ R²) however ill-conditioned P is; P_ref alone leaves P_ref⁻¹ R P_ref R, far from I when the
    data mix the modes and R is not a multiple of I (on the satellite benchmark, 10⁵ sites and 8 269
    modes: 80 steps did not bring every draw of a batch to 10⁻⁶). P is never formed
    (Pv = v + d ⊙ G(d ⊙ v)), so under ``vmap`` over draws the steps are matrix products with G
    shared: O(k m²) for k steps against m³/3 for P's own factor. The solution is exact when the
    residual is within 10× that tolerance; the caller redraws the others by :func:`conditional_latent`."""
    from jax.scipy.sparse.linalg import cg

    d, _ = _whitened_scales(field, noise)

    def P(v):
        return v + d * (gram @ (d * v))

    r = d / reference.scales

    def M(v):  # (R P_ref R)⁻¹ v
        return cho_solve((reference.factor, True), v / r) / r

    x, _ = cg(P, b, M=M, tol=pcg_tolerance(b.dtype), maxiter=PCG_MAXITER)
    return x, jnp.linalg.norm(P(x) - b) / jnp.linalg.norm(b)


# the sites from which an MCMC fit with at least as many sites as modes takes the collapsed form
# (latent_too_stiff): above the sizes measured to mix in the latent form (n ≤ 2 000, fewer sites than
# modes), below the 10⁴ sites measured not to; between them nothing was measured
LATENT_STIFF_SITES = 5000


def latent_too_stiff(n: int, m: int) -> bool:
    """Whether NUTS on the latent form at ``n`` sites with ``m`` modes is not to be tried: at least as
    many sites as modes (the data pin every mode, and the latent posterior's precision I + ΦᵀΦσ²/s² is
    far from diagonal on irregular sites) and at least ``LATENT_STIFF_SITES`` sites. Measured: at
    10⁴ real satellite sites with m in the thousands every warm-up iteration hit the maximum tree depth
    (1 023 leapfrog steps, step size 5e-4), and at ~10⁵ a fit did not finish in 40 minutes (issue 13's
    report); at n = 500-2 000 with m = 2 946 latent NUTS took 183-309 steps a draw
    (docs/results/inference.md)."""
    return n >= m and n >= LATENT_STIFF_SITES


def collapse_pays(n: int, m: int, with_gram: bool = True, rank: int | None = None,
                  evaluations: float | None = None, mcmc: bool = False) -> bool:
    """Collapsed or latent? A collapsed gradient costs the cheapest of :func:`collapsed_cost`'s paths
    (dense n²m + n³/3; Gram nm + m³/3 or Woodbury nm² + m³/3; with a site covariance of rank R,
    mR + Rn² + n³/3; with ``evaluations``, a path's one-off cost spread over them, as there) and
    NUTS needs about 15 of them per
    draw in 3-4 dimensions; a latent gradient costs about nm + 300m (trunk product, tabulated branch and
    NUTS bookkeeping per mode) and NUTS in m dimensions needs 250-350, more with strong data (a funnel
    in (θ, z): see docs/results/sbc.md). Collapse when a collapsed gradient is cheap outright
    (≤ 5·10⁸ flops, tens of ms: its few-parameter posterior mixes more reliably) or less than 50× a
    latent one (measured trade-off: docs/results/inference.md); for ``mcmc`` (NUTS) always where the
    latent form is too stiff to sample whatever a gradient costs (:func:`latent_too_stiff`)."""
    if mcmc and latent_too_stiff(n, m):
        return True
    collapsed = collapsed_cost(n, m, with_gram, rank, evaluations)[0]
    latent = n * m + 300 * m
    return collapsed <= 5e8 or collapsed < 50 * latent
