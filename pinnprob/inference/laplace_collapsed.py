"""Non-Gaussian observations with a Gaussian generator: the field integrated out by a Laplace
approximation (Tierney & Kadane 1986; Rue, Martino & Chopin 2009, JRSS-B 71, 319, eq. 3), and drawn
afterwards from that Gaussian approximation.

y_i | η_i ~ p(y_i | η_i) independently (Poisson with log link, Bernoulli with logit link),
η = loc + Sz, S = σΨ(θ) (n × m), z ~ N(0, I_m). Newton's method finds the mode ẑ of
log p(y | loc + Sz) − |z|²/2; with W = −∂²log p/∂η² (diagonal) at the mode,

    log p(y) ≈ log p(y | loc + Sẑ) − |ẑ|²/2 − ½ log det(I_m + SᵀWS),

and z | y ≈ N(ẑ, (I_m + SᵀWS)⁻¹). Both are computed in the smaller of two spaces, from the static
shapes: the latent z when m < n (an m × m Cholesky), else the field f = Sz = Ka with K = SSᵀ
(Rasmussen & Williams 2006, *Gaussian Processes for Machine Learning*, Algorithms 3.1-3.2: an
n × n Cholesky of B = I + W^½KW^½, det B = det(I_m + SᵀWS) by Sylvester's identity, ẑ = Sᵀa).

Gradients with respect to θ, σ and loc: the Newton iterations run without them (a while loop), then
one differentiable Newton step from their end; at the mode the step's derivative in its starting
point vanishes, so its derivative in the parameters is the implicit one (the mode's), and the log
density above, evaluated there, has the exact gradient of the approximation.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve, solve_triangular
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample

from pinnprob.inference.distribution import GenerativeField

__all__ = ["OBSERVATIONS", "LaplaceCollapsed", "laplace_mode", "approximate_conditional_latent"]

# The observation laws a field's linear predictor η enters, by the name fit's ``likelihood`` takes.
OBSERVATIONS = {
    "poisson": lambda eta: dist.Poisson(jnp.exp(eta)),
    "bernoulli": lambda eta: dist.Bernoulli(logits=eta),
}
# log p(y | η) per site in closed form for the Newton iterations: Poisson(exp η) written as yη − e^η
# (NumPyro's xlogy(y, e^η) has a 0/0 derivative once e^η underflows, even for y = 0)
_LOG_LIKELIHOODS = {
    "poisson": lambda eta, y: y * eta - jnp.exp(eta) - jax.scipy.special.gammaln(y + 1.0),
    "bernoulli": lambda eta, y: y * eta - jax.nn.softplus(eta),
}
NEWTON_MAX_STEPS = 100
NEWTON_TOL = 1e-10  # stop when a Newton step gains less than this in log density (relative to n)
_STEP_SIZES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125)


def _check_family(family: str):
    if family not in OBSERVATIONS:
        raise ValueError(f"family must be one of {tuple(OBSERVATIONS)}, got {family!r}")


def _derivatives(family: str, eta, y):
    """(log p(y | η) summed, ∂/∂η, W = −∂²/∂η²), the last two per site, shape (n,)."""
    y = jnp.asarray(y, eta.dtype)

    def total(e):
        return jnp.sum(_LOG_LIKELIHOODS[family](e, y))

    grad = jax.grad(total)
    g, h = jax.jvp(grad, (eta,), (jnp.ones_like(eta),))  # the sites are independent: Hv with v = 1 is the diagonal
    return total(eta), g, -h


def _uses_field_space(field: GenerativeField) -> bool:
    return field.event_shape[0] <= field.latent_dim


def _sqrt_weights(W):
    """√W, with W floored at the smallest normal number: √ has an infinite derivative at 0, where a
    saturated site (Bernoulli at |η| ≫ 1) puts W."""
    return jnp.sqrt(jnp.maximum(W, jnp.finfo(W.dtype).tiny))


def _inputs(field: GenerativeField, loc, y):
    """(S = σΨ (n, m), loc (n,), y (n,)) with S and loc in their wider floating type."""
    S, loc = field.basis(), jnp.broadcast_to(jnp.asarray(loc), field.event_shape)
    dt = jnp.result_type(S, loc, float)
    return S.astype(dt), loc.astype(dt), jnp.asarray(y)


def _newton(objective, step, x0, n: int):
    """Damped Newton: from x0, ``step(x)`` gives the Newton direction; the step size is the best of
    ``_STEP_SIZES`` by ``objective`` (the full step whenever it gains), stopping when a step gains
    < NEWTON_TOL · max(n, 1) or after NEWTON_MAX_STEPS. Returns the last x and whether it stopped
    on the gain (False: NEWTON_MAX_STEPS steps still gaining, not a mode)."""
    tol = NEWTON_TOL * max(n, 1)
    sizes = jnp.asarray(_STEP_SIZES, x0.dtype)

    def body(carry):
        x, val, _, i = carry
        d = step(x)
        vals = jax.vmap(lambda t: objective(x + t * d))(sizes)
        vals = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
        k = jnp.argmax(vals)
        better = vals[k] > val
        x_new = jnp.where(better, x + sizes[k] * d, x)
        gain = jnp.where(better, vals[k] - val, 0.0)
        return x_new, jnp.where(better, vals[k], val), gain, i + 1

    def cond(carry):
        _, _, gain, i = carry
        return (gain > tol) & (i < NEWTON_MAX_STEPS)

    init = (x0, objective(x0), jnp.asarray(jnp.inf, x0.dtype), jnp.asarray(0))
    x, _, gain, _ = jax.lax.while_loop(cond, body, init)
    return x, gain <= tol


def _latent_space(family, S, loc, y):
    """Newton in z (m < n). Returns (log p(y) approximation, NaN where Newton did not converge; ẑ;
    L with LLᵀ = I + SᵀWS)."""
    m = S.shape[1]

    def objective(z, S=S, loc=loc):
        return _derivatives(family, loc + S @ z, y)[0] - 0.5 * jnp.sum(z**2)

    def newton_step(z, S=S, loc=loc):
        _, g, W = _derivatives(family, loc + S @ z, y)
        L = jnp.linalg.cholesky(jnp.eye(m) + S.T @ (W[:, None] * S))
        return cho_solve((L, True), S.T @ g - z)

    Sc, lc = jax.lax.stop_gradient(S), jax.lax.stop_gradient(loc)
    z, ok = jax.lax.stop_gradient(_newton(lambda z: objective(z, Sc, lc), lambda z: newton_step(z, Sc, lc),
                                          jnp.zeros(m, S.dtype), S.shape[0]))
    z = z + newton_step(z)  # differentiable in S and loc: the implicit derivative of the mode
    ll, _, W = _derivatives(family, loc + S @ z, y)
    L = jnp.linalg.cholesky(jnp.eye(m) + S.T @ (W[:, None] * S))
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return jnp.where(ok, ll - 0.5 * jnp.sum(z**2) - 0.5 * logdet, jnp.nan), z, L


def _field_space(family, S, loc, y):
    """Newton in f = Ka, K = SSᵀ (n ≤ m; Rasmussen & Williams 2006, Alg. 3.1). Returns (log p(y)
    approximation, NaN where Newton did not converge; a; √W; L with LLᵀ = B = I + √W K √W); ẑ = Sᵀa."""
    n = S.shape[0]

    def objective(a, K, loc):
        f = K @ a
        return _derivatives(family, loc + f, y)[0] - 0.5 * jnp.dot(a, f)

    def newton_step(a, K, loc):
        f = K @ a
        _, g, W = _derivatives(family, loc + f, y)
        sW = _sqrt_weights(W)
        L = jnp.linalg.cholesky(jnp.eye(n) + sW[:, None] * K * sW[None, :])
        b = W * f + g
        a_new = b - sW * cho_solve((L, True), sW * (K @ b))  # R&W Alg. 3.1, lines 6-8
        return a_new - a

    K = S @ S.T
    Kc, lc = jax.lax.stop_gradient(K), jax.lax.stop_gradient(loc)
    a, ok = jax.lax.stop_gradient(_newton(lambda a: objective(a, Kc, lc), lambda a: newton_step(a, Kc, lc),
                                          jnp.zeros(n, S.dtype), n))
    a = a + newton_step(a, K, loc)
    f = K @ a
    ll, _, W = _derivatives(family, loc + f, y)
    sW = _sqrt_weights(W)
    L = jnp.linalg.cholesky(jnp.eye(n) + sW[:, None] * K * sW[None, :])
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return jnp.where(ok, ll - 0.5 * jnp.dot(a, f) - 0.5 * logdet, jnp.nan), a, sW, L


def laplace_mode(field: GenerativeField, loc, y, family: str):
    """The Laplace approximation of log ∫ p(y | loc + σΨz) N(z | 0, I) dz and the mode ẑ (m,), for an
    unbatched Gaussian ``field`` at n sites, ``loc`` (n,) and observations ``y`` (n,) of ``family``
    (a key of :data:`OBSERVATIONS`). Returns (log density, ẑ); the log density is NaN if Newton's
    method did not converge in NEWTON_MAX_STEPS steps."""
    _check_family(family)
    S, loc, y = _inputs(field, loc, y)
    if _uses_field_space(field):
        value, a, _, _ = _field_space(family, S, loc, y)
        return value, S.T @ a
    value, z, _ = _latent_space(family, S, loc, y)
    return value, z


def approximate_conditional_latent(key, field: GenerativeField, loc, y, family: str, with_mean: bool = False):
    """One draw of z from the Laplace approximation N(ẑ, (I + SᵀWS)⁻¹) of z | y, S = σΨ(θ) (m,):
    by its Cholesky factor when m < n, else by Matheron's rule in the field's space,
    z = ẑ + z₀ − Sᵀ√W B⁻¹(√W S z₀ + ε), z₀ ~ N(0, I_m), ε ~ N(0, I_n), whose covariance is
    I − Sᵀ(K + W⁻¹)⁻¹S = (I + SᵀWS)⁻¹ without dividing by W. With ``with_mean``, (the draw, ẑ)."""
    _check_family(family)
    S, loc, y = _inputs(field, loc, y)
    n, m = S.shape
    k1, k2 = jax.random.split(key)
    if _uses_field_space(field):
        _, a, sW, L = _field_space(family, S, loc, y)
        z0 = jax.random.normal(k1, (m,), S.dtype)
        e = jax.random.normal(k2, (n,), S.dtype)
        mode = S.T @ a
        draw = mode + z0 - S.T @ (sW * cho_solve((L, True), sW * (S @ z0) + e))
    else:
        _, mode, L = _latent_space(family, S, loc, y)
        draw = mode + solve_triangular(L.T, jax.random.normal(k1, (m,), S.dtype), lower=False)
    return (draw, mode) if with_mean else draw


class LaplaceCollapsed(dist.Distribution):
    """y_i ~ p(y_i | loc_i + f_i) independently (``family``: "poisson", log link, or "bernoulli",
    logit link), f ~ GenerativeField (Gaussian), with f integrated out by a Laplace approximation
    (:func:`laplace_mode`). Event shape ``(n,)``. ``log_prob`` is the approximation, not the exact
    marginal: it is exact to O(1/n) per parameter for log-concave likelihoods with informative data
    and slightly off for sparse counts or binary data (Rue, Martino & Chopin 2009, §4.1). The field
    is the generator's latent part σΨz (its site variance, the truncated modes' share, is left out,
    in ``sample`` as in ``log_prob``)."""

    arg_constraints = {"loc": constraints.real_vector}
    pytree_data_fields = ("field", "loc")
    pytree_aux_fields = ("family",)

    def __init__(self, field: GenerativeField, loc, family: str, *, validate_args=None):
        if not field.gaussian:
            raise TypeError("the Laplace-collapsed likelihood needs a Gaussian generator")
        if field.batch_shape != ():
            raise ValueError("the Laplace-collapsed likelihood takes an unbatched field")
        _check_family(family)
        loc = jnp.asarray(loc)
        if not (loc.ndim <= 1 and loc.size in (1, field.event_shape[0])):
            raise ValueError(f"loc of shape {loc.shape} does not broadcast to the field's {field.event_shape}")
        self.field, self.loc, self.family = field, jnp.broadcast_to(loc, field.event_shape), family
        super().__init__(batch_shape=(), event_shape=field.event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        base = OBSERVATIONS[self.family](jnp.zeros(())).support
        return constraints.independent(base, 1)

    def sample(self, key, sample_shape=()):
        k1, k2 = jax.random.split(key)
        f = self.field.from_latent(jax.random.normal(k1, tuple(sample_shape) + (self.field.latent_dim,)))
        return OBSERVATIONS[self.family](self.loc + f).sample(k2)

    @validate_sample
    def log_prob(self, value):
        """The Laplace approximation of log p(value), shape ``value.shape[:-1]`` (one Newton solve per
        data set)."""
        return self._log_prob(jnp.asarray(value))

    @jax.jit  # one program, not op by op when NumPyro evaluates eagerly (distribution.py)
    def _log_prob(self, value):
        if value.ndim == 1:
            return laplace_mode(self.field, self.loc, value, self.family)[0]
        flat = value.reshape((-1,) + self.event_shape)
        out = jax.vmap(lambda v: laplace_mode(self.field, self.loc, v, self.family)[0])(flat)
        return out.reshape(value.shape[:-1])
