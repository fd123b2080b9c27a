"""The samplers a fit runs on its model: NumPyro's NUTS, BlackJAX's NUTS (window adaptation, one chain
after another), SVI (a mean-field normal guide, then draws from it) and an INLA-style Laplace
approximation of a collapsed model (mode, Hessian, importance-weighted integration). Each returns
``(samples, stats)``: the draws of every sample and deterministic site shaped (chain, draw, ...), and
the per-draw sampler statistics (``diverging`` and ``n_steps``, the leapfrog steps per draw; SVI ``elbo_loss``, per step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

__all__ = ["run_nuts", "warm_start_draws", "run_blackjax", "run_svi", "run_laplace", "laplace_start", "LaplaceStart",
           "run_method", "chain_method_for", "expected_evaluations", "laplace_integration", "pareto_khat"]

CHAIN_METHODS = ("sequential", "parallel", "vectorized")

# what expected_evaluations assumes: leapfrog steps per NUTS draw on a collapsed model (3-4
# dimensions: 7-31, about 15), and the evaluations of run_laplace's BFGS search and its Hessians
# by differences (tens of steps in practice; at most max_steps = 500)
NUTS_STEPS_PER_DRAW = 15
LAPLACE_MODE_EVALUATIONS = 150
LAPLACE_INTEGRATIONS = ("importance", "axial")
PARETO_K_WARN = 0.7  # importance weights' Pareto k̂ above which estimates are unreliable (Vehtari et al. 2024)
DECREMENT_WARN = 0.1  # run_laplace warns when the final Hessian puts the mode this far (log density) away
NEWTON_DECREMENT = 1e-5  # run_laplace's mode: the log density a Newton step would still gain
# above this many flops of importance proposals, method="laplace" integrates by axial points
# (laplace_integration). 3·10¹³ is about 9 minutes at the ~55·10⁹ flop/s a 2-core CPU reached on
# the proposals at n = 2 000 (1.1·10¹³ in 190 s); there the axial points were 4× faster but their
# mean of the range was 0.23 posterior sd off the exact GP's, the proposals' 0.04 (ess_n2000 results)
AXIAL_ABOVE = 3e13
# what the messages of a float32 mode search that failed advise (a float32 log density over thousands of
# observations is too coarse for BFGS's line search; warm_start_hessian.md)
FLOAT32_MODE_HINT = ("in float32 the mode search may stop short of the mode: jax.config.update('jax_enable_x64', "
                     "True) before fitting")


def _num_proposals(total: int) -> int:
    """run_laplace's default number of importance proposals for ``total`` draws."""
    return max(4 * total, 400)


def laplace_integration(evaluation_cost: float, num_draws: int) -> str:
    """:func:`run_laplace`'s integration for a model whose one evaluation costs ``evaluation_cost``
    flops (:func:`~pinnprob.inference.collapsed.collapsed_cost`): importance-weighted proposals
    (max(4 × draws, 400) evaluations) unless they would cost more than ``AXIAL_ABOVE`` flops
    (minutes on a CPU: e.g. 10⁵ sites with thousands of modes), then the 2p axial points."""
    return "axial" if evaluation_cost * _num_proposals(num_draws) > AXIAL_ABOVE else "importance"


def expected_evaluations(method: str, num_warmup: int, num_samples: int, num_chains: int, svi_steps: int,
                         field_draws: int | None = None, integration: str = "importance") -> int:
    """About how many times a fit by ``method`` evaluates its collapsed likelihood (a gradient or a
    value counts as one): NUTS (NumPyro or BlackJAX) (num_warmup + num_samples) × num_chains × ~15
    leapfrog steps; Laplace its mode search and Hessian (~150) plus one per importance proposal
    (max(4 × draws, 400)); SVI one per step; and, for every method, one per field draw recovered
    afterwards (all draws, or ``field_draws`` per chain). What the cost model
    (:func:`~pinnprob.inference.collapsed.collapsed_cost`) spreads a path's one-off cost over."""
    draws = num_samples * num_chains
    if method in ("nuts", "blackjax"):
        n = (num_warmup + num_samples) * num_chains * NUTS_STEPS_PER_DRAW
    elif method == "laplace":
        n = LAPLACE_MODE_EVALUATIONS + (_num_proposals(draws) if integration == "importance" else 10)
    else:
        n = svi_steps
    recovered = draws if field_draws is None else min(field_draws, num_samples) * num_chains
    return int(n + recovered)


def chain_method_for(chain_method: str | None, num_chains: int) -> str:
    """NumPyro's ``chain_method`` for a fit: as given, or by default ``"parallel"`` (one chain per
    device, through ``jax.pmap``) when there are several chains and as many local devices, else
    ``"sequential"``. ValueError for an unknown one, or ``"parallel"`` with too few devices."""
    if chain_method is None:
        return "parallel" if 1 < num_chains <= jax.local_device_count() else "sequential"
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    if chain_method == "parallel" and num_chains > jax.local_device_count():
        raise ValueError(f"chain_method='parallel' runs one chain per device: {num_chains} chains, "
                         f"{jax.local_device_count()} device(s) (on a CPU, set "
                         "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts)")
    return chain_method


def warm_start_draws(start: LaplaceStart, key, num_chains: int) -> tuple[dict, np.ndarray, bool]:
    """(init_params, inverse mass matrix, exact) for NUTS from a :class:`LaplaceStart` at a posterior
    mode with its Hessian H: each chain starts at its own draw from the Laplace approximation
    N(z, H⁻¹) (unconstrained values by site, each with a leading (num_chains,) axis), and the inverse
    mass matrix is H⁻¹ (p, p), in the order of ``ravel_pytree(z)`` — the sites' sorted order,
    NumPyro's for a dense mass matrix. Where H is not positive definite (``exact`` False), its
    eigenvalues' magnitudes (floored at 1e-6 of the largest; the identity if H is not finite) stand
    in."""
    from jax.flatten_util import ravel_pytree

    if start.hessian is None:
        raise ValueError("a NUTS warm start needs the Hessian at its mode (laplace_start(..., hessian_scale=1.0))")
    f, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in start.z.items()})
    H = 0.5 * (np.asarray(start.hessian, np.float64) + np.asarray(start.hessian, np.float64).T)
    try:
        # exactly H⁻¹ where H is positive definite, however far apart its scales
        Linv = np.linalg.inv(np.linalg.cholesky(H))
        inv_mass, exact = Linv.T @ Linv, True
    except np.linalg.LinAlgError:
        inv_mass, exact = _inverse_curvature(H), False
    L = np.linalg.cholesky(inv_mass)
    eps = np.asarray(jax.random.normal(key, (num_chains, f.shape[0])), np.float64)
    starts = jnp.asarray(np.asarray(f, np.float64) + eps @ L.T, f.dtype)
    return jax.vmap(unravel)(starts), inv_mass, exact


def run_nuts(model, y, key, num_warmup, num_samples, num_chains, progress_bar, chain_method: str = "sequential",
             start: LaplaceStart | None = None):
    """NumPyro's NUTS, ``num_chains`` chains run by ``chain_method`` (:func:`chain_method_for`); the
    chains' keys are split from ``key`` alike for every chain method, so their draws agree up to
    floating-point rounding. ``start`` (a posterior mode with its Hessian, :func:`laplace_start`):
    the chains start at draws from the Laplace approximation there, with its covariance H⁻¹ as a
    dense inverse mass matrix that warm-up keeps (only the step size adapts,
    :func:`warm_start_draws`; where H is not positive definite, warm-up adapts the mass matrix from
    the stand-in, with a warning); None: NumPyro's start (uniform in (−2, 2), unconstrained) and its
    windowed adaptation of a diagonal mass matrix from the identity."""
    # a model from build_model takes its large arrays as an argument: traced (jit_model_args), they are
    # compiled as inputs rather than as literals
    arrays = getattr(model, "arrays", None)
    kwargs = {"y": y} if arrays is None else {"y": y, "arrays": arrays}
    if start is None:
        kernel, init_params = NUTS(model), None
    else:
        # Hoffman & Gelman (2014, JMLR 15, 1593) adapt the mass matrix from warm-up draws; at 10⁴-10⁵
        # sites the posterior is close to its Laplace approximation (Bernstein-von Mises), whose
        # covariance preconditions better than an estimate from a short warm-up, so it is kept
        init_params, inv_mass, exact = warm_start_draws(start, jax.random.fold_in(key, 1), num_chains)
        init_params = init_params if num_chains > 1 else {k: v[0] for k, v in init_params.items()}
        if not exact:
            # e.g. a float32 mode search that stopped on the line search's precision loss, short of the
            # mode (the 1-D advection–diffusion model at 5 000 site-times: gradient norm 5.3, one
            # negative eigenvalue; in float64 the same search converged in 27 steps: warm_start_hessian.md)
            search = start.info or {}
            where = (f" (the mode search stopped after {search['optimiser_steps']} steps with gradient norm "
                     f"{search['gradient_norm']:.3g}: {search['optimiser_message']})" if "gradient_norm" in search else "")
            hint = "; " + FLOAT32_MODE_HINT if jnp.result_type(float) == jnp.float32 else ""
            warnings.warn(f"NUTS's warm start: the Hessian at the mode is not positive definite{where}; warm-up "
                          f"adapts the mass matrix, starting from its eigenvalues' magnitudes{hint}", stacklevel=3)
        kernel = NUTS(model, dense_mass=True, inverse_mass_matrix=jnp.asarray(inv_mass, jnp.result_type(float)),
                      adapt_mass_matrix=not exact)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=progress_bar and chain_method != "parallel",
                jit_model_args=arrays is not None)
    mcmc.run(key, extra_fields=("diverging", "num_steps"), init_params=init_params, **kwargs)
    samples = mcmc.get_samples(group_by_chain=True)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {"diverging": extra["diverging"], "n_steps": extra["num_steps"]}
    return samples, stats


class _Start(NamedTuple):
    """A model's start and its functions, the large arrays as an argument: ``potential(z, arrays)``
    (NumPyro's potential energy of the unconstrained ``z``), ``postprocess(z, arrays)`` (the
    constrained values and deterministics). Jitted with ``arrays`` passed, they compile the arrays as
    inputs, not as constants (3.7 GB of them at 10⁵ sites and 9 000 modes)."""

    z: dict
    arrays: object
    potential: Callable
    postprocess: Callable


def _initialize(key, model, y) -> _Start:
    """The start of NumPyro's ``initialize_model`` for one chain, its search for a valid start
    compiled as one loop (given a batch of one key; a single key tries the first start op by op,
    which for these models costs more than compiling them: a Laplace fit at 40 sites took 10.6 s
    instead of 15.5 s, a space-time one 19 s instead of 23 s, on 2 CPU cores), with the model's large
    arrays (``model.arrays``, :func:`~pinnprob.inference.model.build_model`) as the compiled search's
    argument. The same start; returned unbatched."""
    from numpyro.infer.util import constrain_fn, initialize_model, potential_energy

    arrays = getattr(model, "arrays", None)

    def kwargs(arr):
        return {"y": y} if arr is None else {"y": y, "arrays": arr}

    # NumPyro's own "cannot find valid initial parameters" check is skipped under jit: done here
    z, pe, grad = jax.jit(lambda k, arr: initialize_model(k[None], model, model_kwargs=kwargs(arr),
                                                          dynamic_args=True).param_info)(key, arrays)
    if not (np.all(np.isfinite(np.asarray(pe)))
            and all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grad))):
        raise RuntimeError("no valid start: the model's log density or its gradient is not finite at every "
                           "initial point NumPyro tried; check the data (NaN, values outside the likelihood's "
                           "support) and the priors")
    return _Start(jax.tree_util.tree_map(lambda v: v[0], z), arrays,
                  lambda z, arr: potential_energy(model, (), kwargs(arr), z),
                  lambda z, arr: constrain_fn(model, (), kwargs(arr), z, return_deterministic=True))


def _blackjax_chain(model, y, key, num_warmup, num_samples, progress_bar):
    """One BlackJAX NUTS chain: draws shaped (draw, ...) and stats (draw,)."""
    import blackjax
    from tqdm.auto import tqdm

    k_init, k_warm, k_run = jax.random.split(key, 3)
    start = _initialize(k_init, model, y)
    # BlackJAX takes the log density as a closure: the arrays are compiled in as constants here
    logdensity = lambda z: -start.potential(z, start.arrays)  # noqa: E731
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
    (state, params), _ = warmup.run(k_warm, start.z, num_steps=num_warmup)
    kernel = jax.jit(blackjax.nuts(logdensity, **params).step)

    @jax.jit
    def chunk(state, keys):
        def one(s, k):
            s, inf = kernel(k, s)
            return s, (s.position, inf.is_divergent, inf.num_integration_steps)
        return jax.lax.scan(one, state, keys)

    keys = jax.random.split(k_run, num_samples)
    out, div, steps = [], [], []
    bar = tqdm(total=num_samples, disable=not progress_bar, desc="blackjax nuts")
    for s in range(0, num_samples, 50):
        state, (pos, d, n) = chunk(state, keys[s:s + 50])
        out.append(pos)
        div.append(d)
        steps.append(n)
        bar.update(len(d))
    bar.close()
    positions = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *out)
    samples = jax.vmap(lambda z: start.postprocess(z, start.arrays))(positions)
    stats = {"diverging": jnp.concatenate(div), "n_steps": jnp.concatenate(steps)}
    return samples, stats


def run_blackjax(model, y, key, num_warmup, num_samples, num_chains, progress_bar):
    """BlackJAX's NUTS with window adaptation, ``num_chains`` chains (keys split from ``key``) run one
    after another and stacked."""
    runs = [_blackjax_chain(model, y, k, num_warmup, num_samples, progress_bar)
            for k in jax.random.split(key, num_chains)]
    samples = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[0] for r in runs])
    stats = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[r[1] for r in runs])
    return samples, stats


def run_svi(model, y, key, num_samples, num_chains, svi_steps, progress_bar):
    """SVI with an ``AutoNormal`` guide (Adam, step 0.01, ``svi_steps`` steps), then
    ``num_chains × num_samples`` draws of every site from the fitted guide, shaped as chains."""
    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    res = svi.run(key, svi_steps, y=y, progress_bar=progress_bar)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(y=y)
    sites = [k for k, v in tr.items() if v["type"] in ("sample", "deterministic") and k != "y"]
    draws = Predictive(model, guide=guide, params=res.params, num_samples=num_samples * num_chains,
                       return_sites=sites)(jax.random.fold_in(key, 1), y=y)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in draws.items()}
    stats = {"elbo_loss": res.losses}
    return samples, stats


class LaplaceStart(NamedTuple):
    """Where :func:`run_laplace` starts its mode search, e.g. from a pilot fit on a subsample
    (:func:`laplace_start`): the unconstrained values by sample site (``z``, the model's own sites)
    and an estimate of the potential's Hessian there (``hessian``, (p, p), in the order of
    ``jax.flatten_util.ravel_pytree(z)``), which sets BFGS's first inverse Hessian; None: the model's
    own Hessian at ``z``, by differences of its gradient (p gradients). ``info``: the search that
    found ``z``, if any (its BFGS steps, final gradient norm and message)."""

    z: dict
    hessian: np.ndarray | None = None
    info: dict | None = None


class _Mode(NamedTuple):
    """The mode :func:`_laplace_mode` found: ``f`` (p,) flattened, the Hessian ``H`` there, its
    eigenvalues ``lam`` and vectors ``V``, and the optimiser's figures ``info``."""

    f: np.ndarray
    H: np.ndarray
    lam: np.ndarray
    V: np.ndarray
    info: dict


def _inverse_curvature(H: np.ndarray) -> np.ndarray:
    """BFGS's first inverse Hessian from an estimate H: its eigenvalues' magnitudes (where H is not
    positive), floored at 1e-6 of the largest; the identity if H is not finite or zero."""
    p = H.shape[0]
    if not np.all(np.isfinite(H)):
        return np.eye(p)
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    lam = np.abs(lam)
    if not lam.max() > 0:
        return np.eye(p)
    B = (V / np.maximum(lam, 1e-6 * lam.max())) @ V.T
    return 0.5 * (B + B.T)


class _Flat(NamedTuple):
    """A model's start (:func:`_initialize`) with its unconstrained values flattened: ``x0`` (p,) in
    float64, ``unravel`` back to the sites, the working ``dtype``, and ``potential(flat, arrays)``."""

    init: _Start
    x0: np.ndarray
    unravel: Callable
    dtype: object
    potential: Callable


def _flatten(key, model, y) -> _Flat:
    """:func:`_initialize` the model, its unconstrained values as one flat vector."""
    from jax.flatten_util import ravel_pytree

    init = _initialize(key, model, y)
    flat0, unravel = ravel_pytree(init.z)
    return _Flat(init, np.asarray(flat0, np.float64), unravel, flat0.dtype,
                 lambda f, arr: init.potential(unravel(f), arr))


def _difference_hessian(grad, x: np.ndarray, dtype, g: np.ndarray | None = None, central: bool = False,
                        progress_bar: bool = False, desc: str = "Hessian") -> np.ndarray:
    """The Hessian (p, p) at ``x`` by differences of ``grad``: forward ones (p gradients, plus one at x
    unless ``g`` is given; step √eps, error ~ √eps relative) or, if ``central``, central ones (2p
    gradients; step eps^⅓, for float32)."""
    from tqdm.auto import tqdm

    p = x.shape[0]
    eps = float(jnp.finfo(dtype).eps)
    H = np.empty((p, p))
    if not central:
        h = math.sqrt(eps) * np.maximum(1.0, np.abs(x))
        g = grad(x) if g is None else g
        for i in tqdm(range(p), disable=not progress_bar, desc=desc):
            H[:, i] = (grad(x + h[i] * np.eye(p)[i]) - g) / h[i]
    else:
        h = eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(x))
        for i in tqdm(range(p), disable=not progress_bar, desc=desc):
            e = np.zeros(p)
            e[i] = h[i]
            H[:, i] = (grad(x + e) - grad(x - e)) / (2.0 * h[i])
    return H


def _laplace_mode(flat: _Flat, max_steps: int, progress_bar: bool, start: LaplaceStart | None = None,
                  desc: str = "laplace", final_hessian: bool = True, proper: bool = True) -> _Mode:
    """The posterior mode of a model in NumPyro's unconstrained space and the Hessian there
    (:func:`run_laplace`). BFGS (SciPy, on the jitted potential and its gradient) starts at ``start``
    (the model's start if None) with its Hessian, or else with the model's Hessian there by forward
    differences (p gradients); it stops on a Newton decrement. The Hessian at the mode comes from
    differences of the gradient: forward ones in float64 (p gradients), central in float32; without
    ``final_hessian`` (a pilot's mode, which only starts another search) it is not computed and
    ``H``, ``lam``, ``V`` are None. Without ``proper`` (a start's Hessian, which BFGS takes the
    magnitudes of), a Hessian that is not positive definite is returned as it is, and neither it nor
    the Newton decrement is checked."""
    from jax.flatten_util import ravel_pytree
    from tqdm.auto import tqdm
    import scipy.optimize

    init, dtype, arrays = flat.init, flat.dtype, flat.init.arrays
    value_and_grad = jax.jit(jax.value_and_grad(flat.potential))
    p = flat.x0.shape[0]
    last = {}

    def fun(x):
        v, g = value_and_grad(jnp.asarray(x, dtype), arrays)
        last["x"], last["g"] = np.array(x, np.float64), np.asarray(g, np.float64)
        return float(v), last["g"]

    def grad_at(x):
        return last["g"] if "x" in last and np.array_equal(last["x"], x) else fun(x)[1]

    if start is None:
        x0 = flat.x0
    else:
        if set(start.z) != set(init.z) or (start.hessian is not None and np.shape(start.hessian) != (p, p)):
            raise ValueError(f"the start's sites {sorted(start.z)} and Hessian "
                             f"{None if start.hessian is None else np.shape(start.hessian)} do not match the "
                             f"model's {sorted(init.z)} ({p} unconstrained values)")
        x0 = np.asarray(ravel_pytree({k: jnp.asarray(start.z[k], dtype) for k in init.z})[0], np.float64)
    if start is None or start.hessian is None:
        # the Hessian at the start (forward differences, p gradients): the curvatures of these
        # posteriors differ by 10³-10⁵ between the noise and the intercept at many sites, which took
        # L-BFGS from the identity 58 steps; from a pilot's mode, a pilot's Hessian scaled by the data's
        # share overstates the curvature along the range-σ ridge (under infill it does not grow with
        # the sites), which took BFGS 13 steps of the whole model at 10⁵ sites, against 6 after the
        # model's own Hessian there (docs/results/satellite.md)
        H0 = _difference_hessian(grad_at, x0, dtype, progress_bar=progress_bar, desc=f"{desc}: start's Hessian")
    else:
        H0 = np.asarray(start.hessian, np.float64)
    B0 = _inverse_curvature(H0)
    bar = tqdm(total=max_steps, disable=not progress_bar, desc=f"{desc}: mode")

    def converged(intermediate_result):
        # stop when a Newton step (with the start's curvature) would gain < NEWTON_DECREMENT in log
        # density, ~0.01 posterior sd from the mode: BFGS's own gradient test (|g| < 1e-5) asks far more
        # of a log density summed over 10⁵ sites
        bar.update(1)
        if "x" in last and np.array_equal(last["x"], intermediate_result.x):
            if 0.5 * last["g"] @ B0 @ last["g"] < NEWTON_DECREMENT:
                raise StopIteration

    res = scipy.optimize.minimize(fun, x0, jac=True, method="BFGS", callback=converged,
                                  options={"maxiter": max_steps, "hess_inv0": B0})
    bar.close()
    f = np.asarray(res.x, np.float64)
    gnorm = float(np.linalg.norm(res.jac))
    info = {"optimiser_steps": int(res.nit), "gradient_norm": gnorm, "optimiser_message": str(res.message),
            "start": "prior" if start is None else "given"}
    if not np.all(np.isfinite(f)):
        raise RuntimeError(f"method='laplace': no mode found after {res.nit} BFGS steps; use method='nuts'")
    if not final_hessian:
        return _Mode(f, None, None, None, info)
    # float64: forward differences, error ~ h ~ 1e-8 relative; float32: central, step ∝ eps^⅓
    H = _difference_hessian(grad_at, f, dtype, g=grad_at(f) if dtype == jnp.float64 else None,
                            central=dtype != jnp.float64, progress_bar=progress_bar, desc=f"{desc}: Hessian")
    H = 0.5 * (H + H.T)
    if not proper:
        return _Mode(f, H, None, None, info)
    lam, V = np.linalg.eigh(H)
    if not np.all(lam > 0):
        # in float32 the line search can lose precision and stop far from the mode: the 1-D
        # advection–diffusion model at 5 000 site-times stopped at gradient norm 5.3 with a negative
        # eigenvalue; in float64 the same search converged (warm_start_hessian.md)
        hint = "; " + FLOAT32_MODE_HINT if flat.dtype == jnp.float32 else ""
        raise RuntimeError(f"method='laplace': no proper mode found after {res.nit} BFGS steps (gradient norm "
                           f"{gnorm:.3g}, smallest Hessian eigenvalue {lam.min():.3g}, {res.message}); use "
                           f"method='nuts'{hint}")
    # the Newton decrement by the Hessian at the end (BFGS's stop used the start's curvature): how
    # far, in log density, the mode the integration centres on may lie from the true one
    decrement = float(0.5 * np.sum((V.T @ np.asarray(res.jac, np.float64)) ** 2 / lam))
    if decrement > DECREMENT_WARN:
        warnings.warn(f"method='laplace': by the Hessian at the optimiser's end, the mode is {decrement:.2g} "
                      "away in log density (about √(2·that) posterior sd); the integration is centred there",
                      stacklevel=4)
    info["newton_decrement"] = decrement
    return _Mode(f, H, lam, V, info)


def laplace_start(model, y, key, *, hessian_scale: float | None = None, max_steps: int = 500,
                  progress_bar: bool = False, desc: str = "pilot", start: LaplaceStart | None = None) -> LaplaceStart:
    """A :class:`LaplaceStart` at ``model``'s posterior mode (:func:`run_laplace`'s search, itself
    started at ``start`` if given), e.g. the model of a subsample of the sites, as a start for the
    model of all of them. ``hessian_scale`` None (the default): no Hessian (the search it starts
    takes its own model's Hessian there, p gradients); a number: the Hessian at the mode multiplied
    by it (e.g. the sites' share, (sites) / (subsample's sites); cheap, but a poor guide where the
    curvature does not grow with the sites, as along a range-σ ridge under infill). A start needs no
    proper mode: its Hessian is returned even where it is not positive definite (the search it starts
    takes its eigenvalues' magnitudes)."""
    flat = _flatten(key, model, y)
    mode = _laplace_mode(flat, max_steps, progress_bar, start, desc=desc, final_hessian=hessian_scale is not None,
                         proper=False)
    z = {k: np.asarray(v) for k, v in flat.unravel(jnp.asarray(mode.f, flat.dtype)).items()}
    return LaplaceStart(z, None if hessian_scale is None else hessian_scale * mode.H, mode.info)


def run_laplace(model, y, key, num_samples, num_chains, progress_bar, num_proposals: int | None = None,
                max_steps: int = 500, df: float = 7.0, integration: str = "importance",
                start: LaplaceStart | None = None):
    """An INLA-style approximation of a collapsed model (Rue, Martino & Chopin 2009, JRSS-B 71, 319,
    §3): the posterior mode of its parameters in NumPyro's unconstrained space (SciPy's BFGS on the
    jitted potential and its gradient, started from the Hessian at the start by differences, or from
    ``start``, e.g. a pilot fit's mode: :func:`laplace_start`), the Laplace approximation N(mode, H⁻¹)
    there (H by differences of the same gradient: no second compilation), and its integration:
    ``num_proposals`` draws from a multivariate t (``df``) with that centre and scale, weighted by the
    exact posterior over the proposal (self-normalised importance sampling, which corrects the
    Laplace approximation's symmetry), resampled to ``num_chains × num_samples`` draws. The field is
    then recovered per draw from its exact conditional (by the caller, as for NUTS on the collapsed
    model). Returns (samples, stats, info) with info the mode, the optimiser's steps and gradient
    norm, the importance weights' effective sample size and the largest weight.

    ``integration="axial"`` replaces the proposals, for models whose every evaluation is costly (10⁵
    sites): the log posterior at 2p points, ±√2 Laplace sd along each principal axis of H, gives a
    scale on each side of each axis (a Gaussian would drop by exactly 1 there), and the draws come
    from that product of split normals (the skewness correction of Martins, Simpson, Lindgren & Rue
    2013, CSDA 67, 68, §3.2) — 2p evaluations instead of hundreds, approximate where the posterior
    is not a split normal along those axes; info gives the scales (``axial_scales``, 1 for a
    Gaussian)."""
    if integration not in LAPLACE_INTEGRATIONS:
        raise ValueError(f"integration must be one of {LAPLACE_INTEGRATIONS}, got {integration!r}")
    from tqdm.auto import tqdm

    k_init, k_prop, k_res = jax.random.split(key, 3)
    flat = _flatten(k_init, model, y)
    init, unravel, dtype, potential, arrays = flat.init, flat.unravel, flat.dtype, flat.potential, flat.init.arrays
    postprocess = jax.jit(lambda P, arr: jax.lax.map(lambda f: init.postprocess(unravel(f), arr), P, batch_size=16))
    mode = _laplace_mode(flat, max_steps, progress_bar, start)
    f, lam, V = mode.f, mode.lam, mode.V
    p = f.shape[0]
    scale = jnp.asarray(V / np.sqrt(lam), dtype)  # Σ^{1/2} = V Λ^{-1/2}: Σ = H⁻¹
    total = num_samples * num_chains
    if integration == "axial":
        value = jax.jit(potential)  # the axial points need values only (a gradient costs several times more)
        return _axial_draws(lambda x: float(value(jnp.asarray(x, dtype), arrays)), f, np.asarray(scale, np.float64),
                            k_prop, total, num_chains, num_samples, lambda P: postprocess(P, arrays), dtype,
                            mode.info, progress_bar)
    num_proposals = _num_proposals(total) if num_proposals is None else int(num_proposals)
    k1, k2 = jax.random.split(k_prop)
    g = jax.random.normal(k1, (num_proposals, p), dtype)
    w_chi = jax.random.gamma(k2, df / 2.0, (num_proposals,), dtype) * (2.0 / df)  # χ²_df / df
    eps = g / jnp.sqrt(w_chi)[:, None]
    props = jnp.asarray(f, dtype) + eps @ scale.T
    # log density of the t proposal up to a constant: −(df + p)/2 log(1 + |ε|²/df)
    log_q = -0.5 * (df + p) * jnp.log1p(jnp.sum(eps**2, axis=1) / df)
    # in one call, 16 proposals at a time (a per-proposal Python loop is bound by dispatch for small
    # models; larger batches compile a bigger batched Cholesky)
    with tqdm(total=1, disable=not progress_bar, desc=f"laplace: {num_proposals} proposals") as bar:
        log_p = jax.block_until_ready(-jax.jit(lambda P, arr: jax.lax.map(lambda f: potential(f, arr), P,
                                                                          batch_size=16))(props, arrays))
        bar.update(1)
    log_w = jnp.where(jnp.isfinite(log_p), log_p - log_q, -jnp.inf)
    w = jnp.exp(log_w - jnp.max(log_w))
    w = w / jnp.sum(w)
    pareto_k = pareto_khat(np.asarray(log_w, np.float64))
    if pareto_k > PARETO_K_WARN:
        warnings.warn(f"method='laplace': the importance weights' Pareto k̂ is {pareto_k:.2f} (> {PARETO_K_WARN}): "
                      "the Laplace approximation is too far from the posterior for its proposals to correct "
                      "it reliably; use method='nuts'", stacklevel=3)
    idx = np.asarray(jax.random.choice(k_res, num_proposals, (total,), p=w))
    uniq, inverse = np.unique(idx, return_inverse=True)
    # the constrained values (and deterministics) once per distinct proposal drawn
    values = postprocess(props[uniq], arrays)
    samples = jax.tree_util.tree_map(lambda v: v[inverse], values)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in samples.items()}
    at_mode = jax.tree_util.tree_map(lambda v: v[0], postprocess(jnp.asarray(f, dtype)[None], arrays))
    info = {"mode": _scalars(at_mode), "integration": "importance", **mode.info,
            "proposals": num_proposals, "pareto_k": pareto_k,
            "importance_ess": float(1.0 / jnp.sum(w**2)), "max_weight": float(jnp.max(w))}
    return samples, {}, info


def pareto_khat(log_weights) -> float:
    """The Pareto k̂ of importance log-weights (n,): the shape of a generalised Pareto fitted to their
    upper tail (Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25(72), §3), by the installed
    ArviZ's PSIS. Below 0.5 the weights' variance is finite; above 0.7 the importance estimates
    are unreliable at any practical number of draws. Non-finite weights are dropped (they carry
    zero weight)."""
    lw = np.asarray(log_weights, np.float64)
    lw = lw[np.isfinite(lw)]
    try:  # ArviZ ≥ 1.0: its psislw takes log-likelihoods, for LOO, and negates them into log ratios
        from arviz_stats.base import array_stats

        _, k = array_stats.psislw(-lw, r_eff=1.0)
    except ImportError:  # ArviZ 0.x: its psislw takes the log ratios themselves
        import arviz

        _, k = arviz.psislw(lw, reff=1.0)
    return float(np.asarray(k))


def _axial_draws(value, f, scale, key, total, num_chains, num_samples, postprocess, dtype, info, progress_bar):
    """run_laplace's ``integration="axial"``: split-normal scales from the potential ``value`` at
    f ± √2 scale[:, k], then ``total`` draws f + scale u, u_k from the split normal with scales
    (s⁻_k, s⁺_k) (density continuous at 0, each side's mass ∝ its scale)."""
    from tqdm.auto import tqdm

    p = f.shape[0]
    u0 = value(f)
    s = np.empty((p, 2))
    for k in tqdm(range(p), disable=not progress_bar, desc="laplace: axial points"):
        for j, sign in enumerate((-1.0, 1.0)):
            drop = value(f + sign * math.sqrt(2.0) * scale[:, k]) - u0  # a Gaussian's: exactly 1
            if not (np.isfinite(drop) and drop > 0):
                hint = (" In float32 a log density over many sites may be too coarse for the optimiser: "
                        "jax.config.update('jax_enable_x64', True) before fitting." if dtype == jnp.float32 else "")
                raise RuntimeError("method='laplace', integration='axial': the posterior does not fall off along "
                                   f"axis {k} of the Hessian (log density change {-drop:.3g} at √2 sd): the "
                                   f"optimiser stopped short of the mode ({info['optimiser_message']}) or the "
                                   "posterior is far from Gaussian; use integration='importance' or method='nuts'."
                                   + hint)
            s[k, j] = 1.0 / math.sqrt(drop)
    k1, k2 = jax.random.split(key)
    z = np.abs(np.asarray(jax.random.normal(k1, (total, p)), np.float64))
    plus = np.asarray(jax.random.uniform(k2, (total, p)), np.float64) < s[:, 1] / s.sum(1)
    u = np.where(plus, z * s[:, 1], -z * s[:, 0])
    props = jnp.asarray(f + u @ scale.T, dtype)
    values = postprocess(props)
    samples = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in values.items()}
    mode = jax.tree_util.tree_map(lambda v: v[0], postprocess(jnp.asarray(f, dtype)[None]))
    info = {"mode": _scalars(mode), **info, "integration": "axial", "axial_scales": s.tolist(),
            "evaluations_after_mode": 2 * p + 1}
    return samples, {}, info


def _scalars(values: dict) -> dict:
    return {k: float(np.asarray(v).ravel()[0]) if np.asarray(v).size == 1 else np.asarray(v).tolist()
            for k, v in values.items()}


def run_method(method, model, y, key, num_warmup, num_samples, num_chains, svi_steps, progress_bar,
               chain_method: str = "sequential", integration: str = "importance",
               start: LaplaceStart | None = None):
    """The sampler ``method`` names ("nuts", "blackjax", "laplace", "svi") on ``model``: (samples as NumPy
    arrays, stats, laplace info or None, seconds), the clock stopped after the draws are ready (JAX
    dispatch is asynchronous). ``chain_method`` is NumPyro's, for "nuts"; ``integration`` and
    ``start`` :func:`run_laplace`'s, or for "nuts" a warm start (:func:`run_nuts`)."""
    import time

    t0 = time.perf_counter()
    info = None
    if method == "nuts":
        samples, stats = run_nuts(model, y, key, num_warmup, num_samples, num_chains, progress_bar, chain_method,
                                  start)
    elif method == "blackjax":
        samples, stats = run_blackjax(model, y, key, num_warmup, num_samples, num_chains, progress_bar)
    elif method == "laplace":
        samples, stats, info = run_laplace(model, y, key, num_samples, num_chains, progress_bar,
                                           integration=integration, start=start)
    else:
        samples, stats = run_svi(model, y, key, num_samples, num_chains, svi_steps, progress_bar)
    samples = {k: np.asarray(jax.block_until_ready(v)) for k, v in samples.items()}
    return samples, stats, info, time.perf_counter() - t0
