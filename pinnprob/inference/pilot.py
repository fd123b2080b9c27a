"""A pilot fit for ``method="laplace"`` (and NUTS's warm start) on many sites: the same model on a
random subsample of them, whose posterior mode starts the mode search on the whole data.

At 10⁵ sites one evaluation of the collapsed model costs tens of seconds (an m × m Cholesky with m in
the thousands), and BFGS from the model's start took 31 steps plus p gradients for its first
Hessian. From a subsample's mode — within a few of the full posterior's standard deviations of its
mode — and the whole model's Hessian there, it needs a few.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from pinnprob.inference.model import ModelSpec, build_model, choose_path, path_inputs
from pinnprob.inference.runners import LAPLACE_MODE_EVALUATIONS, LaplaceStart, laplace_start

__all__ = ["PILOT_SITES", "PILOT_ABOVE", "PILOT_MIN_SITES", "PILOT_RANGE_SPREAD", "pilot_pays", "pilot_start",
           "range_floor", "lowered_floor", "warm_start_pays"]

# the subsample's size, and the flops of one evaluation of the whole model (collapsed_cost, a value)
# above which the pilot pays: it costs about what 10²-10³ evaluations at PILOT_SITES sites do (26 s on
# a 2-core CPU in float64 at the satellite benchmark's 10⁵ sites), and saves a dozen or more gradients
# of the whole model. Measured there with m = 5 502 modes (5.6·10¹⁰ flops a value, 2.6 s a gradient):
# the mode search took 21 BFGS steps from the model's start (104 s with its Hessian and axial
# points) and 6 from the pilot's mode (56 s + the pilot's 26 s)
PILOT_SITES = 2000
PILOT_ABOVE = 4e10
# a pilot's own search starts from a pilot on a quarter of its sites while that has at least this
# many: from the model's start, the 2 000-site pilot of the satellite benchmark took 28 BFGS steps
PILOT_MIN_SITES = 500
# how many of the pilot's posterior sd below its mode (the range's Laplace sd, in NumPyro's
# unconstrained coordinate) the whole fit keeps modes for, where that is shorter than the range
# prior's 0.5 % quantile: the whole data's mode lies within a few of the subsample's sd of the
# subsample's, and its own posterior is narrower
PILOT_RANGE_SPREAD = 4.0


def pilot_pays(n: int, evaluation_cost: float) -> bool:
    """Whether a pilot on ``PILOT_SITES`` sites pays before a Laplace fit at ``n`` sites whose one
    evaluation costs ``evaluation_cost`` flops: the data are several times the subsample, and each
    evaluation the pilot saves costs more than ``PILOT_ABOVE``."""
    return n >= 4 * PILOT_SITES and evaluation_cost >= PILOT_ABOVE


def warm_start_pays(evaluation_cost: float) -> bool:
    """Whether NUTS on a collapsed model whose one evaluation costs ``evaluation_cost`` flops starts
    at the Laplace approximation (``fit(warm_start=None)``): when that is above ``PILOT_ABOVE``
    (about a second a value on a 2-core CPU), where the start's 2p gradients and a dozen BFGS steps
    cost less than a few of the trees of hundreds of gradients that NumPyro's start takes on a narrow
    posterior before its first mass-matrix window."""
    return evaluation_cost >= PILOT_ABOVE


def range_floor(start: LaplaceStart, prior, spread: float = PILOT_RANGE_SPREAD) -> float | None:
    """The range ``spread`` Laplace sd below a mode: ``start`` a mode with its Hessian (of the
    potential, in NumPyro's unconstrained space, :func:`~pinnprob.inference.runners.laplace_start`),
    ``prior`` the range's prior (its support's bijection maps the unconstrained coordinate back).
    The marginal sd is √(H⁻¹)_rr. None where there is no ``range`` site or H is not positive
    definite."""
    from jax.flatten_util import ravel_pytree
    from numpyro.distributions.transforms import biject_to

    if start.hessian is None or "range" not in start.z or np.size(start.z["range"]) != 1:
        return None
    mask = ravel_pytree({k: jnp.full(np.shape(v), float(k == "range")) for k, v in start.z.items()})[0]
    r = int(np.argmax(np.asarray(mask)))
    H = np.asarray(start.hessian, np.float64)
    try:
        Linv = np.linalg.inv(np.linalg.cholesky(0.5 * (H + H.T)))
    except np.linalg.LinAlgError:
        return None
    sd = float(np.sqrt(np.sum(Linv[:, r] ** 2)))  # (H⁻¹)_rr = |column r of L⁻¹|², H = L Lᵀ
    lo = float(np.asarray(start.z["range"]).ravel()[0]) - spread * sd
    return float(biject_to(prior.support)(jnp.asarray(lo)))


def lowered_floor(prior_floor: float, pilot_floor: float | None, range_prior) -> float | None:
    """The range a fit keeps modes down to after its pilot (user units): the pilot's ``range_floor``,
    no shorter than the range prior's support allows, where that is below ``prior_floor`` (the range
    prior's 0.5 % quantile); None (keep the prior's) otherwise. Never higher: fewer modes than the
    prior's cut were measured to bias dense data, whose fine scales the left-out modes carry (the
    satellite benchmark at 10⁵ sites, docs/results/satellite.md: the pilot's floor 0.36 against the
    prior's 0.30 kept 4 782 modes instead of 5 502, moved the range's posterior mean by −0.6 sd and
    the field's RMSE by +4 %)."""
    if pilot_floor is None or range_prior is None:
        return None
    floor = max(float(pilot_floor), float(getattr(range_prior.support, "lower_bound", 0.0)))
    return floor if floor < prior_floor else None


def pilot_start(spec: ModelSpec, Xu, y, key, progress_bar: bool = False,
                sites: int | None = None, floor: bool = False) -> tuple[LaplaceStart, dict]:
    """(start, info): the posterior mode of ``spec``'s model on ``sites`` (default ``PILOT_SITES``) of
    its sites drawn at random (``Xu`` (n, d) the sites in the prior's unit box, ``y`` (n,)), returned
    without a Hessian: the whole model's search takes its own there (p gradients; the pilot's, scaled by
    n / sites, overstates the curvature along the range-σ ridge, which does not grow with the sites
    under infill). The pilot's own search starts from a pilot on a quarter of its sites while that
    has at least ``PILOT_MIN_SITES``. ``info``: the subsample's size, the path its likelihood took,
    the seconds it took (its own pilot's included) and its own pilot's info, if any. With ``floor``
    (and a ``range`` prior), the pilot's Hessian at its mode is taken (p gradients of the subsample's
    model; counted in the seconds) for one use: ``info["range_floor"]``, the range ``PILOT_RANGE_SPREAD`` of its sd
    below its mode (user units, :func:`range_floor`), which lowers the whole fit's range floor where it
    is shorter (:func:`lowered_floor`)."""
    t0 = time.perf_counter()
    sites = PILOT_SITES if sites is None else int(sites)
    n = Xu.shape[0]
    k_sub, k_fit, k_inner = jax.random.split(key, 3)
    idx = np.sort(np.asarray(jax.random.choice(k_sub, n, (sites,), replace=False)))
    Xs = Xu[idx]
    if spec.likelihood != "gaussian":
        path = "laplace"  # the field integrated out by Newton's method, as in the whole model
    else:
        path = choose_path(spec.prior, sites, LAPLACE_MODE_EVALUATIONS, collapsed=True)
    gen = spec.prior.generator if spec.generator is None else spec.generator
    feats, G, SC = path_inputs(spec.prior, gen, Xs, spec.params.theta_bounds(), path)
    sub = dataclasses.replace(spec, features=feats, Z=None if spec.Z is None else spec.Z[idx], gram=G,
                              site_covariance=SC)
    inner = inner_info = None
    if sites // 4 >= PILOT_MIN_SITES:
        inner, inner_info = pilot_start(sub, Xs, y[idx], k_inner, progress_bar, sites // 4)
    floor = floor and "range" in spec.params.priors
    start = laplace_start(build_model(sub), y[idx], k_fit, progress_bar=progress_bar, start=inner,
                          desc=f"pilot ({sites} sites)", hessian_scale=1.0 if floor else None)
    info = {"sites": sites, "path": path}
    if floor:
        info["range_floor"] = range_floor(start, spec.params.priors["range"])
        start = start._replace(hessian=None)
    info["seconds"] = time.perf_counter() - t0
    return start, info if inner_info is None else {**info, "pilot": inner_info}
