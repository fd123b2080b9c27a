"""Inference with the shipped generative prior against the exact Gaussian process and NumPyro's HSGP.

Run:  python benchmarks/inference_vs_exact.py            (the full run, ≈ 45 min on a 2-core CPU)
      python benchmarks/inference_vs_exact.py --quick    (a small smoke run, a few minutes)

Synthetic data: n uniform sites in [0, 1]², a Matérn field on R² (ν = 1.5, practical range 0.3,
σ = 1) drawn exactly by Cholesky of :func:`pinnprob.truth.matern_covariance`, intercept 0,
Gaussian noise sd 0.3, fixed seed. The same explicit priors for every method:

    range ~ Uniform(0.15, 1.0)  (user units; inside the prior's allowed range [0.05, 1] × 2)
    sigma ~ HalfNormal(2),  noise ~ HalfNormal(1),
    intercept ~ Normal(mean(y), 2 sd(y))  (the prior ``pinnprob.fit`` uses internally)

1. The right posterior (n = 400): ``pinnprob.fit(nu=1.5)`` against the exact GP (dense
   Cholesky of the Matérn-3/2 covariance, field integrated out) and the exact GP with the
   covariance of the SPDE solution on pinnprob's buffered Neumann box (method of images).
   Then ν free: ``pinnprob.fit(nu=None)`` against the exact GP with ν ~ Uniform(1, 2.5), whose
   Matérn correlation uses K_ν by trapezoidal quadrature of K_ν(x) = ∫₀^∞ e^{−x cosh t} cosh(νt) dt
   (differentiable in x and ν; checked against SciPy to float32 precision).
2. Speed at n ∈ {500, 1000, 2000}: the cost of one gradient of the log density for each method,
   and ESS per second of ``range`` (ArviZ bulk ESS over warmup + sampling seconds, after
   ``jax.block_until_ready``; compile time measured apart as the time of a 1 + 1 run and
   subtracted). A run whose predicted time exceeds ``--max-run-s`` is projected instead from
   its measured gradient cost and the steps / ESS per iteration of a real run (stated in the table).

Writes docs/results/inference.md (``--quick``: /tmp/inference_quick.md) and a JSON of all numbers.
OPENBLAS_NUM_THREADS is set to 1 unless given: on a shared 2-core machine OpenBLAS threads
contending with other jobs made JAX's Cholesky 30× slower (n = 2000: 2.4 s against 73 ms).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy / jax load OpenBLAS

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import arviz as az  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.contrib.hsgp.approximation import hsgp_matern, linear_approximation  # noqa: E402
from numpyro.contrib.hsgp.laplacian import eigenfunctions  # noqa: E402
from numpyro.contrib.hsgp.spectral_densities import diag_spectral_density_matern  # noqa: E402
from numpyro.infer import NUTS  # noqa: E402
from numpyro.infer.util import initialize_model  # noqa: E402
from _common import distances  # noqa: E402  (benchmarks/ is sys.path[0])

import pinnprob  # noqa: E402
from pinnprob import truth  # noqa: E402
from pinnprob.domain import Box  # noqa: E402
from pinnprob.inference.collapsed import collapse_pays  # noqa: E402
from pinnprob.inference.data import CoordinateMap  # noqa: E402
from pinnprob.inference.model import ModelParams, ModelSpec, build_model, model_generator, truncation_tail  # noqa: E402
from pinnprob.inference.priors import quantile, truncate_to_range  # noqa: E402

TRUE = {"range": 0.3, "sigma": 1.0, "nu": 1.5, "noise": 0.3, "intercept": 0.0}
PARAMS = ("range", "sigma", "noise")
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# data and priors
# ---------------------------------------------------------------------------------------------
def make_data(n: int, seed: int):
    """n uniform sites in [0,1]², an exact Matérn draw (R², Cholesky, float64) plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    D = distances(X)
    C = truth.matern_covariance(D, range=TRUE["range"], sigma=TRUE["sigma"], nu=TRUE["nu"])
    f = truth.cholesky_sample(seed + 1, C, 1)[0]
    y = TRUE["intercept"] + f + TRUE["noise"] * rng.standard_normal(n)
    return X, y


def priors():
    """The explicit priors shared by every method (fresh objects each call)."""
    return {"range": dist.Uniform(0.15, 1.0), "sigma": dist.HalfNormal(2.0), "noise": dist.HalfNormal(1.0)}


PRIOR_TEXT = "range ~ Uniform(0.15, 1.0), sigma ~ HalfNormal(2), noise ~ HalfNormal(1), intercept ~ Normal(mean y, 2 sd y)"


def _common_sites(ymean: float, ysd: float):
    """range, sigma, noise, intercept with the shared priors (inside a model)."""
    P = priors()
    rho = numpyro.sample("range", P["range"])
    sigma = numpyro.sample("sigma", P["sigma"])
    noise = numpyro.sample("noise", P["noise"])
    icpt = numpyro.sample("intercept", dist.Normal(ymean, 2.0 * ysd))
    return rho, sigma, noise, icpt


# ---------------------------------------------------------------------------------------------
# exact GP models (field integrated out)
# ---------------------------------------------------------------------------------------------
def matern32(h, rho):
    """Matérn-3/2 correlation at distance h for practical range ρ: κ = √(8ν)/ρ = √12/ρ."""
    x = math.sqrt(12.0) * h / rho
    return (1.0 + x) * jnp.exp(-x)


def exact_model(D, y, nu_free: bool = False):
    """y ~ N(intercept, σ² R(D; ρ, ν) + noise² I): the exact GP on R², ν = 1.5 or ν ~ U(1, 2.5)."""
    n = D.shape[0]
    iu = np.triu_indices(n, 1)
    d_pairs = jnp.asarray(D[iu], jnp.float32)
    Dj = jnp.asarray(D, jnp.float32)
    y_info = (float(np.mean(y)), float(np.std(y)))

    def model(y=None):
        rho, sigma, noise, icpt = _common_sites(*y_info)
        if nu_free:
            nu = numpyro.sample("nu", dist.Uniform(1.0, 2.5))
            r = truth.matern_correlation_jax(d_pairs, range=rho, nu=nu)  # K_ν by quadrature
            R = jnp.zeros((n, n)).at[iu].set(r)
            R = R + R.T + jnp.eye(n)
        else:
            R = matern32(Dj, rho)
        K = sigma**2 * R + (noise**2) * jnp.eye(n)
        numpyro.sample("y", dist.MultivariateNormal(icpt * jnp.ones(n), scale_tril=jnp.linalg.cholesky(K)), obs=y)

    return model


def box_image_distances(U: np.ndarray, cutoff: float) -> np.ndarray:
    """Distances from U_i to the Neumann images 2m + s ⊙ U_j of the unit square (method of images),
    for the images that come within ``cutoff`` of some site: shape (num_images, n, n)."""
    out = []
    for m in np.ndindex(5, 5):
        shift = 2.0 * (np.asarray(m) - 2)
        for s in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            img = shift + np.asarray(s) * U
            Dk = np.sqrt(((U[:, None, :] - img[None, :, :]) ** 2).sum(-1))
            if Dk.min() < cutoff:
                out.append(Dk)
    return np.stack(out)


def exact_box_model(X, y, buffer: float = 0.5):
    """The exact GP with the covariance of the SPDE solution on pinnprob's box: the data mapped to
    the unit square around their bounding box (CoordinateMap, buffer 0.5), Neumann boundary,
    covariance by images; ν = 1.5. (``pinnprob.fit`` models the bounding rectangle; for these
    uniform site sets on a square it is the square to within a few thousandths.)"""
    cmap = CoordinateMap.from_data(X, buffer)
    U = cmap.to_unit(X)
    # longest range the prior allows is 1.0 user units; corr < 1e−5 beyond x = 13.8: this keeps the
    # site and its 8 nearest reflections (the next images are 2 away)
    cutoff = 13.8 * (1.0 / cmap.scale) / math.sqrt(12.0)
    Dimg = jnp.asarray(box_image_distances(U, cutoff), jnp.float32)
    n = X.shape[0]
    y_info = (float(np.mean(y)), float(np.std(y)))

    def model(y=None):
        rho, sigma, noise, icpt = _common_sites(*y_info)
        R = jnp.sum(matern32(Dimg, rho / cmap.scale), axis=0)
        K = sigma**2 * R + (noise**2) * jnp.eye(n)
        numpyro.sample("y", dist.MultivariateNormal(icpt * jnp.ones(n), scale_tril=jnp.linalg.cholesky(K)), obs=y)

    return model, Dimg.shape[0]


def check_box_images(seed: int = 0) -> float:
    """Max abs difference between the JAX image sum and truth.box_covariance (50 sites)."""
    rng = np.random.default_rng(seed)
    U = 0.25 + 0.5 * rng.uniform(size=(50, 2))
    rho = 0.5  # the longest range in unit-box units
    Dimg = box_image_distances(U, 13.8 * rho / math.sqrt(12.0))
    mine = np.asarray(jnp.sum(matern32(jnp.asarray(Dimg), rho), 0), np.float64)
    ref = truth.box_covariance(U, U, Box.unit(2, "neumann"), range=rho, sigma=1.0, nu=1.5)
    return float(np.max(np.abs(mine - ref)))


def hsgp_model(X, y, m: int, c: float, precompute: bool = False):
    """NumPyro's HSGP (Matérn-3/2, m basis functions per dimension, Dirichlet box of half-width
    c × the half-width of the centred data); numpyro's ``length`` ℓ = ρ/2 (κ = √(2ν)/ℓ) and
    ``alpha`` = σ² (it multiplies the spectral density). ``precompute=False``: the convenience
    ``hsgp_matern``, which recomputes the n × m² eigenfunctions at every evaluation;
    ``True``: the eigenfunctions computed once (``eigenfunctions`` + ``linear_approximation``, the
    same model), as pinnprob computes its trunk once."""
    lo, hi = X.min(0), X.max(0)
    Xc = jnp.asarray(X - 0.5 * (lo + hi), jnp.float32)
    ell = float(c * 0.5 * np.max(hi - lo))
    y_info = (float(np.mean(y)), float(np.std(y)))
    phi = eigenfunctions(Xc, ell=ell, m=m) if precompute else None

    def model(y=None):
        rho, sigma, noise, icpt = _common_sites(*y_info)
        if precompute:
            spd = jnp.sqrt(diag_spectral_density_matern(nu=1.5, alpha=sigma**2, length=rho / 2.0, ell=ell, m=m, dim=2))
            f = linear_approximation(phi, spd, m=phi.shape[-1], non_centered=True)
        else:
            f = hsgp_matern(Xc, nu=1.5, alpha=sigma**2, length=rho / 2.0, ell=ell, m=m)
        numpyro.sample("y", dist.Normal(icpt + f, noise).to_event(1), obs=y)

    return model, ell


# ---------------------------------------------------------------------------------------------
# pinnprob: the model fit() builds, for gradient costs
# ---------------------------------------------------------------------------------------------
def pinnprob_model(prior, X, y, nu, collapsed, buffer: float = 0.5, mode_tol: float = 0.01, separable=None):
    """The NumPyro model ``pinnprob.fit`` samples (same steps as fit(): coordinate map, truncation
    of the range prior and of the modes, ``build_model``); returns (model, modes kept, heuristic).
    ``separable=False``: the latent path with the dense Φ instead of fit's separable tables."""
    cmap = CoordinateMap.from_data(X, buffer, rectangle=prior.any_box)
    prior = prior if cmap.lengths is None else prior.on_box(cmap.lengths)
    pr = prior.param_range
    lo_user, hi_user = pr.range[0] * cmap.scale, pr.range[1] * cmap.scale
    P = priors()
    R = truncate_to_range(P["range"], lo_user, hi_user, "range")
    min_range = float(np.clip(quantile(R, 0.005), lo_user, hi_user)) / cmap.scale
    p = prior.truncate(max(min_range, pr.range[0]), tol=mode_tol, nu=nu)
    heuristic = collapse_pays(X.shape[0], p.latent_dim)
    U = jnp.asarray(cmap.to_unit(X))
    # as fit(): dense Φ for the collapsed path, the product features (separable tables) for the latent one
    feats = p.generator.features(U) if collapsed or separable is False else p.generator.product_features(U)
    params = ModelParams(pr, {"range": R, **({} if nu is not None else {"nu": dist.Uniform(*pr.nu)})},
                         {} if nu is None else {"nu": nu}, cmap.scale)
    gen = model_generator(p, params)
    tail = truncation_tail(prior.spde, prior.generator.basis.eigenvalues, p.latent_dim)
    model = build_model(ModelSpec(
        prior=p, features=feats, cmap=cmap, y_info=(float(y.mean()), float(y.std())), Z=None, likelihood="gaussian",
        params=params, sigma_prior=P["sigma"], noise_prior=P["noise"],
        collapsed=collapsed, jitter=1e-5, generator=gen, tail=tail))
    return model, p.latent_dim, heuristic


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
def gradient_cost(model, y, reps: int = 20, max_s: float = 40.0, seed: int = 0):
    """(median seconds of one jitted gradient of the potential after warm-up, compile seconds, calls)."""
    info = initialize_model(jax.random.key(seed), model, model_kwargs={"y": jnp.asarray(y, jnp.float32)},
                            dynamic_args=False)
    g = jax.jit(jax.grad(info.potential_fn))
    z = info.param_info.z
    t = time.perf_counter()
    jax.block_until_ready(g(z))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(g(z))
    first = time.perf_counter() - t
    reps = int(max(3, min(reps, max_s / max(first, 1e-9))))
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(g(z))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), compile_s, reps


def ess_bulk(x) -> float:
    return float(az.ess(np.asarray(x, np.float64).reshape(1, -1), method="bulk"))


def summarise(samples: dict, names) -> dict:
    return {k: {"mean": float(np.mean(samples[k])), "sd": float(np.std(samples[k], ddof=1)),
                "ess": ess_bulk(samples[k])} for k in names if k in samples}


def _supports(model, y):
    """The support of every latent sample site of ``model`` (to map NUTS's unconstrained z back)."""
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(y=jnp.asarray(y, jnp.float32))
    return {k: v["fn"].support for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]}


def run_nuts(model, y, warmup: int, samples: int, seed: int, keep: int = 16):
    """One NUTS chain (NumPyro's kernel) stepped by a jitted ``sample`` in a Python loop, so that
    compilation is separated exactly: ``setup_s`` = init + compile + the first iteration,
    ``run_s`` = the remaining warmup + sampling iterations, blocked. Records sites of size ≤ ``keep``
    (constrained), tree sizes and divergences."""
    kw = {"y": jnp.asarray(y, jnp.float32)}
    supports = _supports(model, y)
    kernel = NUTS(model)
    t = time.perf_counter()
    state = kernel.init(jax.random.key(seed), warmup, model_args=(), model_kwargs=kw)
    step = jax.jit(lambda s: kernel.sample(s, (), kw))
    state = jax.block_until_ready(step(state))
    setup_s = time.perf_counter() - t
    small = [k for k, v in state.z.items() if np.size(v) <= keep]
    trace, steps, div = [], [], []
    t = time.perf_counter()
    for i in range(1, warmup + samples):
        state = step(state)
        if i >= warmup:
            trace.append({k: state.z[k] for k in small})
        steps.append(state.num_steps)
        div.append(state.diverging)
    jax.block_until_ready(state)
    run_s = time.perf_counter() - t
    z = {k: jnp.stack([d[k] for d in trace]) for k in small}
    s = {k: np.asarray(numpyro.distributions.transforms.biject_to(supports[k])(v)) for k, v in z.items()}
    steps = np.asarray(jnp.stack(steps))
    return {"samples": s, "setup_s": setup_s, "run_s": run_s, "steps": float(np.mean(steps)),
            "steps_sampling": float(np.mean(steps[warmup - 1:])),
            "divergences": int(np.sum(np.asarray(jnp.stack(div))[warmup - 1:])),
            "warmup": warmup, "num_samples": samples}


def run_pinnprob(prior, X, y, nu, warmup: int, samples: int, seed: int, collapsed=None, buffer: float = 0.5):
    """``pinnprob.fit`` itself (method="nuts", one chain); ``sampling_s`` is fit's own clock around
    ``MCMC.run`` (after block_until_ready), compile included."""
    P = priors()
    kw = dict(prior=prior, nu=nu, range_prior=P["range"], sigma_prior=P["sigma"], noise_prior=P["noise"], buffer=buffer,
              method="nuts", num_chains=1, seed=seed, collapsed=collapsed, progress_bar=False)
    t = time.perf_counter()
    idata = pinnprob.fit(X, y, num_warmup=warmup, num_samples=samples, **kw)
    wall = time.perf_counter() - t
    meta = json.loads(idata.attrs["pinnprob"])
    post = idata.posterior
    s = {k: post[k].values.reshape(-1) for k in ("range", "sigma", "noise", "nu", "intercept") if k in post}
    return {"samples": s, "sampling_s": meta["sampling_seconds"], "fit_wall_s": wall,
            "collapsed": bool(meta["collapsed"]), "modes": int(meta["prior_config"].get("max_modes") or -1),
            "divergences": int(idata.sample_stats["diverging"].values.sum()),
            "warmup": warmup, "num_samples": samples}


# ---------------------------------------------------------------------------------------------
# part 1: the right posterior
# ---------------------------------------------------------------------------------------------
def part_posterior(prior, args, log):
    n = args.n_post
    X, y = make_data(n, args.seed)
    D = distances(X)
    out = {"n": n, "box_images_check": check_box_images(), "pinn_buffer": args.pinn_buffer}
    W, S = args.post_warmup, args.post_samples

    log(f"[posterior] exact GP on R², ν = 1.5, n = {n}")
    r = run_nuts(exact_model(D, y), y, W, S, args.seed)
    out["exact"] = {**summarise(r["samples"], PARAMS), "run": _strip(r)}
    if args.box:
        log(f"[posterior] exact GP on the buffered Neumann box (images), ν = 1.5, {args.box_warmup} + {args.box_samples}")
        model, nimg = exact_box_model(X, y)
        r = run_nuts(model, y, args.box_warmup, args.box_samples, args.seed)
        out["exact_box"] = {**summarise(r["samples"], PARAMS), "run": _strip(r), "images": nimg}
    log(f"[posterior] pinnprob.fit(nu=1.5), {args.post_pinn_warmup} + {args.post_pinn_samples}")
    r = run_pinnprob(prior, X, y, 1.5, args.post_pinn_warmup, args.post_pinn_samples, args.seed, buffer=args.pinn_buffer)
    out["pinnprob"] = {**summarise(r["samples"], PARAMS), "run": _strip(r)}
    if args.small_buffer_posterior:
        log(f"[posterior] pinnprob.fit(nu=1.5, buffer={args.small_buffer}), {args.post_pinn_warmup} + {args.post_pinn_samples}")
        r = run_pinnprob(prior, X, y, 1.5, args.post_pinn_warmup, args.post_pinn_samples, args.seed,
                         buffer=args.small_buffer)
        out["pinnprob_b"] = {**summarise(r["samples"], PARAMS), "run": _strip(r), "buffer": args.small_buffer}

    if args.nu_free:
        names = PARAMS + ("nu",)
        Wn, Sn = args.nu_warmup, args.nu_samples
        if args.n_nu != n:
            X, y = make_data(args.n_nu, args.seed)
            D = distances(X)
        out["n_nu"] = args.n_nu
        log(f"[posterior] exact GP on R², ν ~ U(1, 2.5) (K_ν by quadrature), n = {args.n_nu}, {Wn} + {Sn}")
        r = run_nuts(exact_model(D, y, nu_free=True), y, Wn, Sn, args.seed)
        out["exact_nu"] = {**summarise(r["samples"], names), "run": _strip(r)}
        col = None if args.nu_collapsed == "auto" else args.nu_collapsed == "yes"
        log(f"[posterior] pinnprob.fit(nu=None, collapsed={col}), {Wn} + {Sn}")
        r = run_pinnprob(prior, X, y, None, Wn, Sn, args.seed, collapsed=col, buffer=args.pinn_buffer)
        _, m_free, heur = pinnprob_model(prior, X, y, None, True, buffer=args.pinn_buffer)
        out["pinnprob_nu"] = {**summarise(r["samples"], names), "run": _strip(r), "heuristic_collapsed": heur,
                              "modes": m_free}
        if args.small_buffer_posterior:
            log(f"[posterior] pinnprob.fit(nu=None, buffer={args.small_buffer}), {Wn} + {Sn}")
            r = run_pinnprob(prior, X, y, None, Wn, Sn, args.seed, collapsed=col, buffer=args.small_buffer)
            out["pinnprob_nu_b"] = {**summarise(r["samples"], names), "run": _strip(r), "buffer": args.small_buffer}
    return out


def part_hsgp_posterior(args, log):
    """NumPyro's HSGP (eigenfunctions precomputed, m = --hsgp-m per dimension, c = --hsgp-c) on the
    posterior part's data set, for its accuracy against the exact GP."""
    X, y = make_data(args.n_post, args.seed)
    model, _ = hsgp_model(X, y, args.hsgp_m, args.hsgp_c, precompute=True)
    log(f"[posterior] HSGP (m = {args.hsgp_m}, c = {args.hsgp_c}), n = {args.n_post}, "
        f"{args.post_warmup} + {args.post_samples}")
    r = run_nuts(model, y, args.post_warmup, args.post_samples, args.seed)
    return {**summarise(r["samples"], PARAMS), "run": _strip(r), "m": args.hsgp_m, "c": args.hsgp_c}


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "samples"}


# ---------------------------------------------------------------------------------------------
# part 2: speed
# ---------------------------------------------------------------------------------------------
DEFAULT_STEPS = {"exact": 14.0, "hsgp_pre": 255.0, "hsgp": 255.0, "pinn_collapsed": 16.0, "pinn_latent": 300.0,
                 "pinn_collapsed_b": 16.0, "pinn_latent_b": 300.0, "pinn_latent_dense": 300.0}
METHODS = ("exact", "hsgp_pre", "hsgp", "pinn_collapsed", "pinn_latent", "pinn_collapsed_b", "pinn_latent_b",
           "pinn_latent_dense")


def speed_models(prior, X, y, args):
    """The models at one data set (pinnprob's exactly as ``fit`` builds them, at fit's default buffer
    0.5 and, suffix ``_b``, at ``--small-buffer``), plus fit's choice and the modes kept."""
    D = distances(X)
    m_lat, modes, heur = pinnprob_model(prior, X, y, 1.5, False)
    m_col, _, _ = pinnprob_model(prior, X, y, 1.5, True)
    m_lat_b, modes_b, heur_b = pinnprob_model(prior, X, y, 1.5, False, buffer=args.small_buffer)
    m_col_b, _, _ = pinnprob_model(prior, X, y, 1.5, True, buffer=args.small_buffer)
    m_lat_d, _, _ = pinnprob_model(prior, X, y, 1.5, False, separable=False)
    models = {"exact": exact_model(D, y), "hsgp": hsgp_model(X, y, args.hsgp_m, args.hsgp_c)[0],
              "hsgp_pre": hsgp_model(X, y, args.hsgp_m, args.hsgp_c, precompute=True)[0],
              "pinn_collapsed": m_col, "pinn_latent": m_lat, "pinn_collapsed_b": m_col_b, "pinn_latent_b": m_lat_b,
              "pinn_latent_dense": m_lat_d}
    return models, {"modes": modes, "heuristic_collapsed": heur, "modes_b": modes_b, "heuristic_collapsed_b": heur_b}


def part_speed(prior, args, log):
    """Gradient costs, then ESS/s runs (real where affordable, else projected)."""
    ns = args.ns
    data = {n: make_data(n, args.seed + 10 * n) for n in ns}
    grads, info = {}, {}
    for n in ns:
        X, y = data[n]
        models, info[n] = speed_models(prior, X, y, args)
        for name, model in models.items():
            if name not in args.methods:
                continue
            g, c, reps = gradient_cost(model, y)
            grads[(name, n)] = {"grad_s": g, "compile_s": c, "reps": reps}
            log(f"[grad] n = {n:5d} {name:15s} {1e3 * g:9.2f} ms (compile {c:.1f} s, {reps} calls)")
        log(f"[grad] n = {n:5d} pinnprob keeps {info[n]['modes']} modes; fit picks "
            f"{'collapsed' if info[n]['heuristic_collapsed'] else 'latent'}")

    runs, refs = {}, {}  # refs: method -> its last real run, for projections
    W, S = args.warmup, args.samples
    Wr, Sr = args.reduced_warmup, args.reduced_samples
    for key in [k for k in METHODS if k in args.methods and k not in args.grad_only]:
        for n in ns:
            X, y = data[n]
            g = grads[(key, n)]["grad_s"]
            ref = refs.get(key)
            steps = ref["steps"] if ref is not None else DEFAULT_STEPS[key]
            full, reduced = (W + S) * steps * g, (Wr + Sr) * steps * g
            entry = {"grad_s": g, "predicted_s": full}
            if full <= args.max_run_s or (ref is None and reduced <= args.first_run_factor * args.max_run_s):
                w, s = (W, S) if full <= args.max_run_s else (Wr, Sr)
                log(f"[run] n = {n:5d} {key:15s} {w} + {s}, predicted {(w + s) * steps * g:.0f} s")
                models, _ = speed_models(prior, X, y, args)
                r = run_nuts(models[key], y, w, s, args.seed)
                ess = ess_bulk(r["samples"]["range"])
                entry.update(_strip(r), ess=ess, ess_per_s=ess / r["run_s"], projected=False,
                             range_mean=float(np.mean(r["samples"]["range"])),
                             range_sd=float(np.std(r["samples"]["range"], ddof=1)))
                refs[key] = {"n": n, "steps": r["steps"], "ess_per_iter": ess / s, "name": key}
                log(f"      ESS {ess:.0f}, {r['run_s']:.1f} s (+ setup/compile {r['setup_s']:.1f} s), "
                    f"{r['steps']:.0f} steps/iter, {r['divergences']} divergent, ESS/s {entry['ess_per_s']:.3g}")
            else:
                src = ref if ref is not None else _borrow(runs, key, n)
                if src is None:
                    entry.update(projected=True, ess_per_s=None, note="no reference run")
                else:
                    t_proj = (W + S) * src["steps"] * g
                    entry.update(projected=True, ess_per_s=src["ess_per_iter"] * S / t_proj, run_s=t_proj,
                                 steps=src["steps"], ess=src["ess_per_iter"] * S,
                                 note=f"projected from {src['name']} at n = {src['n']}")
                log(f"[proj] n = {n:5d} {key:15s} predicted {full:.0f} s > {args.max_run_s:.0f} s: "
                    f"{entry.get('note')}, ESS/s {entry['ess_per_s']}")
            runs[(key, n)] = entry
    return {"ns": ns, "info": {str(n): v for n, v in info.items()},
            "grads": {f"{k[0]}@{k[1]}": v for k, v in grads.items()},
            "runs": {f"{k[0]}@{k[1]}": v for k, v in runs.items()}}


def _borrow(runs, key, n):
    """For a run never made, borrow steps and ESS per draw from a sampler of the same geometry:
    collapsed pinnprob (4 parameters, field integrated out) from the exact GP; ``hsgp_matern``
    from the same HSGP model with its basis precomputed."""
    src = {"pinn_collapsed": "exact", "pinn_collapsed_b": "exact", "hsgp": "hsgp_pre"}.get(key)
    if src is None:
        return None
    cands = [(m, v) for (nm, m), v in runs.items() if nm == src and not v.get("projected")]
    if not cands:
        return None
    m, v = min(cands, key=lambda mv: abs(mv[0] - n))
    return {"n": m, "steps": v["steps"], "ess_per_iter": v["ess"] / v["num_samples"], "name": src}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt(x, p=3):
    return "—" if x is None else f"{x:.{p}g}"


def posterior_table(res: dict) -> str:
    ex = res["exact"]
    rows = ["| method | param | mean | sd | ESS | Δmean / sd_exact | sd / sd_exact − 1 |", "|---|---|---|---|---|---|---|"]
    for key, label in (("exact", "exact GP, R²"), ("exact_box", "exact GP, buffered Neumann box"),
                       ("pinnprob", f"pinnprob.fit (ν = 1.5, buffer {res.get('pinn_buffer', 0.5):g})"),
                       ("pinnprob_b", f"pinnprob.fit (ν = 1.5, buffer {res.get('pinnprob_b', {}).get('buffer', 0):g})")):
        if key not in res:
            continue
        for p in PARAMS:
            s = res[key][p]
            d = (s["mean"] - ex[p]["mean"]) / ex[p]["sd"]
            q = s["sd"] / ex[p]["sd"] - 1
            rows.append(f"| {label} | {p} | {s['mean']:.4f} | {s['sd']:.4f} | {s['ess']:.0f} | "
                        f"{d:+.2f} | {100 * q:+.0f} % |")
    if "hsgp" in res:
        h = res["hsgp"]
        for p in PARAMS:
            s = h[p]
            d = (s["mean"] - ex[p]["mean"]) / ex[p]["sd"]
            q = s["sd"] / ex[p]["sd"] - 1
            rows.append(f"| NumPyro HSGP (m = {h['m']}, c = {h['c']:g}) | {p} | {s['mean']:.4f} | {s['sd']:.4f} | "
                        f"{s['ess']:.0f} | {d:+.2f} | {100 * q:+.0f} % |")
    if "exact_nu" in res:
        ex = res["exact_nu"]
        for key, label in (("exact_nu", "exact GP, R², ν ~ U(1, 2.5)"),
                           ("pinnprob_nu", f"pinnprob.fit (ν free, buffer {res.get('pinn_buffer', 0.5):g})"),
                           ("pinnprob_nu_b", f"pinnprob.fit (ν free, buffer {res.get('pinnprob_nu_b', {}).get('buffer', 0):g})")):
            if key not in res:
                continue
            for p in PARAMS + ("nu",):
                s = res[key][p]
                d = (s["mean"] - ex[p]["mean"]) / ex[p]["sd"]
                q = s["sd"] / ex[p]["sd"] - 1
                rows.append(f"| {label} | {p} | {s['mean']:.4f} | {s['sd']:.4f} | {s['ess']:.0f} | "
                            f"{d:+.2f} | {100 * q:+.0f} % |")
    return "\n".join(rows)


def hsgp_sweep_table(po: dict) -> str:
    """HSGP's accuracy against the exact GP for each (m, c) run with ``--parts hsgp_posterior``."""
    ex = po["exact"]
    rows = ["NumPyro HSGP's accuracy on the same data, by basis size (m per dimension, m² functions) and box "
            "factor c, each a `--parts hsgp_posterior --hsgp-m M --hsgp-c C` run (500 + 1000 draws, one chain), "
            "merged with `--report-only`. Δmean in exact posterior sd, then the sd ratio − 1:", "",
            "| m | c | functions | range | sigma | noise | steps/iter | sampling s |", "|---|---|---|---|---|---|---|---|"]
    for h in sorted(po["hsgp_sweep"], key=lambda h: (h["c"], h["m"])):
        cells = [f"{(h[p]['mean'] - ex[p]['mean']) / ex[p]['sd']:+.2f} / {100 * (h[p]['sd'] / ex[p]['sd'] - 1):+.0f} %"
                 for p in PARAMS]
        rows.append(f"| {h['m']} | {h['c']:g} | {h['m'] ** 2} | " + " | ".join(cells)
                    + f" | {h['run']['steps']:.0f} | {h['run']['run_s']:.0f} |")
    return "\n".join(rows)


def project_all(sp: dict, args) -> None:
    """(Re)compute every projected entry from the real runs present (also after merging runs).

    Time = (warmup + samples) × steps/iter × gradient cost at this n × the reference run's overhead
    factor (its sampling seconds over iterations × steps × its gradient cost: NUTS bookkeeping, and
    machine noise); ESS = the reference's ESS per draw × samples. The reference is the real run of
    the same method nearest in n, else a sampler of the same geometry (:func:`_borrow`)."""
    W, S = args.warmup, args.samples
    R, G = sp["runs"], sp["grads"]
    real = {}
    for k, v in R.items():
        if not v.get("projected"):
            key, n = k.split("@")
            iters = v["warmup"] + v["num_samples"] - 1
            real.setdefault(key, []).append((int(n), {
                "n": int(n), "steps": v["steps"], "ess_per_iter": v["ess"] / v["num_samples"], "name": key,
                "overhead": v["run_s"] / (iters * v["steps"] * G[k]["grad_s"])}))
    borrow = {"pinn_collapsed": "exact", "pinn_collapsed_b": "exact", "hsgp": "hsgp_pre"}
    for k, v in R.items():
        if not v.get("projected"):
            continue
        key, n = k.split("@")
        n = int(n)
        cands = real.get(key) or real.get(borrow.get(key, ""), [])
        if not cands:
            v.update(ess_per_s=None, note="no reference run")
            continue
        src = min(cands, key=lambda c: (abs(c[0] - n), c[0]))[1]
        t = (W + S) * src["steps"] * G[k]["grad_s"] * src["overhead"]
        v.update(run_s=t, steps=src["steps"], ess=src["ess_per_iter"] * S, ess_per_s=src["ess_per_iter"] * S / t,
                 note=f"projected from {src['name']} at n = {src['n']} (overhead × {src['overhead']:.2f})")


LABELS = {"exact": "exact GP (dense Cholesky)",
          "hsgp_pre": "NumPyro HSGP, eigenfunctions precomputed",
          "hsgp": "NumPyro HSGP via `hsgp_matern` (eigenfunctions recomputed per call)",
          "pinn_collapsed": "pinnprob, collapsed (field integrated out)",
          "pinn_latent": "pinnprob, latent (non-centred `field_latent`)",
          "pinn_collapsed_b": "pinnprob, collapsed, smaller buffer",
          "pinn_latent_b": "pinnprob, latent, smaller buffer",
          "pinn_latent_dense": "pinnprob, latent, dense trunk Φ (before the separable product)"}


def speed_tables(sp: dict, args) -> tuple[str, str]:
    project_all(sp, args)
    ns = sp["ns"]
    G, R, I = sp["grads"], sp["runs"], sp["info"]
    g = ["| method | " + " | ".join(f"n = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for k, lab in LABELS.items():
        if all(f"{k}@{n}" not in G for n in ns):
            continue
        lab = lab + (f" (m = {args.hsgp_m}, c = {args.hsgp_c:g})" if k.startswith("hsgp") else "")
        g.append(f"| {lab} | " + " | ".join(f"{1e3 * G[f'{k}@{n}']['grad_s']:.3g} ms" if f"{k}@{n}" in G else "—"
                                              for n in ns) + " |")
    g.append("| pinnprob modes kept (`truncate`) | " + " | ".join(str(I[str(n)]["modes"]) for n in ns) + " |")
    g.append("| `fit` picks (`collapse_pays`) | " + " | ".join("collapsed" if I[str(n)]["heuristic_collapsed"]
                                                            else "latent" for n in ns) + " |")
    if "modes_b" in I[str(ns[0])]:
        g.append(f"| pinnprob modes kept, buffer {args.small_buffer:g} | " + " | ".join(str(I[str(n)]["modes_b"]) for n in ns) + " |")
        g.append(f"| `fit` picks, buffer {args.small_buffer:g} | " + " | ".join(
            "collapsed" if I[str(n)]["heuristic_collapsed_b"] else "latent" for n in ns) + " |")
    e = ["| method | n | run | iterations | steps / iter | divergent | setup + compile s | sampling s | ESS(range) | ESS/s | E[range] | sd[range] |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, lab in LABELS.items():
        for n in ns:
            if f"{key}@{n}" not in R:
                continue
            r = R[f"{key}@{n}"]
            hk = "heuristic_collapsed_b" if key.endswith("_b") else "heuristic_collapsed"
            pick = (key in ("pinn_collapsed", "pinn_latent", "pinn_collapsed_b", "pinn_latent_b")
                    and key.startswith("pinn_collapsed") == I[str(n)].get(hk))
            lab2 = lab + (f" (m = {args.hsgp_m}, c = {args.hsgp_c:g})" if key.startswith("hsgp") else "")
            lab2 += " ← fit's choice" if pick else ""
            if r.get("projected"):
                t = "—" if r.get("run_s") is None else f"{r['run_s']:.0f} (proj.)"
                e.append(f"| {lab2} | {n} | {r.get('note', 'projected')} | — | {_fmt(r.get('steps'))} | — | — | "
                         f"{t} | {_fmt(r.get('ess'))} (proj.) | **{_fmt(r.get('ess_per_s'))}** (proj.) | — | — |")
            else:
                e.append(f"| {lab2} | {n} | measured | {r['warmup']} + {r['num_samples']} | {r['steps']:.0f} | "
                         f"{r['divergences']} | {r['setup_s']:.1f} | {r['run_s']:.1f} | {r['ess']:.0f} | "
                         f"**{r['ess_per_s']:.3g}** | {r['range_mean']:.3f} | {_fmt(r.get('range_sd'))} |")
    return "\n".join(g), "\n".join(e)


def write_report(results: dict, args, path: Path):
    lines = [
        "# Inference with the generative prior against the exact GP and HSGP",
        "",
        f"Produced by `python benchmarks/inference_vs_exact.py{' --quick' if args.quick else ''}` on "
        f"{platform.machine()} with {os.cpu_count()} CPU cores, JAX {jax.__version__} (float32), NumPyro "
        f"{numpyro.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
        f"{results.get('timing_note', '')}Prior: `{results['prior']}`.",
        "",
        "Data: n uniform sites in [0, 1]², a Matérn field on R² (ν = 1.5, practical range ρ = 0.3, σ = 1) "
        "drawn exactly by Cholesky of `truth.matern_covariance`, intercept 0, noise sd 0.3, seed "
        f"{args.seed}. Priors, the same for every method: {PRIOR_TEXT}.",
        "",
    ]
    if "exact" in results.get("posterior", {}):
        po = results["posterior"]
        lines += [
            f"## 1. The posterior (n = {po['n']})",
            "",
            f"One NUTS chain each: exact GPs {po['exact']['run']['warmup']} + {po['exact']['run']['num_samples']}, "
            f"pinnprob {po['pinnprob']['run']['warmup']} + {po['pinnprob']['run']['num_samples']} "
            f"(`fit` chose {'collapsed' if po['pinnprob']['run']['collapsed'] else 'latent'}, "
            f"{po['pinnprob']['run']['modes']} modes"
            + (f"; with buffer {po['pinnprob_b']['buffer']:g}: {'collapsed' if po['pinnprob_b']['run']['collapsed'] else 'latent'}, "
               f"{po['pinnprob_b']['run']['modes']} modes" if "pinnprob_b" in po else "")
            + "). Differences in units of the exact (R²) posterior sd; "
            "the goal is |Δmean| ≤ 0.2 and |sd ratio − 1| ≤ 20 %. The Monte Carlo error of a mean is about "
            "sd/√ESS, so with ESS ≈ 200 differences of ±0.1 sd are noise."
            + (f" The box GP uses {po['exact_box']['images']} Neumann images (checked against "
               f"`truth.box_covariance` at the longest range: max abs difference {po['box_images_check']:.1e})."
               if "exact_box" in po else " The exact GP on the box (`--box`) was not run."),
            "",
            posterior_table(po),
            "",
        ]
        if po.get("hsgp_sweep"):
            lines += [hsgp_sweep_table(po), ""]
        if "exact_nu" in po:
            lines += [
                f"ν free (n = {po.get('n_nu', po['n'])}, own data set): both with ν ~ Uniform(1, 2.5), "
                f"{po['exact_nu']['run']['warmup']} + "
                f"{po['exact_nu']['run']['num_samples']}; the exact GP evaluates K_ν by quadrature "
                f"(differentiable in ν). pinnprob ran {'collapsed' if po['pinnprob_nu']['run']['collapsed'] else 'latent'} "
                f"with {po['pinnprob_nu']['modes']} modes (its heuristic would pick "
                f"{'collapsed' if po['pinnprob_nu']['heuristic_collapsed'] else 'latent'}); ν rows are compared "
                "with the exact ν-free posterior.",
                "",
            ]
        lines += ["Run details (exact GPs: sampling seconds without compile, NUTS steps per iteration; "
                  "pinnprob: `fit`'s own sampling clock, compile included, and `fit`'s total wall time):", "",
                  "| run | iterations | sampling s | setup + compile s | steps/iter | divergent |", "|---|---|---|---|---|---|"]
        for k in ("exact", "exact_box", "pinnprob", "pinnprob_b", "exact_nu", "pinnprob_nu", "pinnprob_nu_b"):
            if k in po:
                r = po[k]["run"]
                if "sampling_s" in r:
                    lines.append(f"| {k} | {r['warmup']} + {r['num_samples']} | {r['sampling_s']:.1f} (incl. compile) | "
                                 f"(fit wall {r['fit_wall_s']:.1f}) | — | {r['divergences']} |")
                else:
                    lines.append(f"| {k} | {r['warmup']} + {r['num_samples']} | {r['run_s']:.1f} | {r['setup_s']:.1f} | "
                                 f"{r['steps']:.1f} | {r['divergences']} |")
        lines.append("")
    if "speed" in results:
        gt, et = speed_tables(results["speed"], args)
        lines += [
            "## 2. Speed",
            "",
            "Cost of one gradient of the log density (`jax.jit(jax.grad(potential_fn))` from "
            "`initialize_model`, median of up to 20 blocked calls after warm-up):",
            "",
            gt,
            "",
            "ESS per second of `range`: ArviZ bulk ESS over the seconds of warmup + sampling. Every method "
            "runs the same loop: NumPyro's NUTS kernel, `jax.jit(kernel.sample)` stepped from Python and "
            "blocked at the end, so compile (with init and the first iteration) is measured apart as "
            "'setup + compile'. pinnprob's models are the ones `fit` builds (its `build_model`, same mode "
            f"truncation). One chain, {args.warmup} + {args.samples}; a method whose first run is predicted "
            f"to exceed {args.max_run_s:.0f} s runs {args.reduced_warmup} + {args.reduced_samples} instead; "
            "later runs predicted over that are projected: ESS/s = (ESS per draw) / (steps per iteration × "
            "gradient cost × (warmup + samples) / samples), with the steps and ESS per draw of the stated real run "
            "(collapsed pinnprob with no run of its own borrows the exact GP's: same 4 parameters, field integrated out).",
            "",
            et,
            "",
        ]
    lines += [
        "## How to rerun",
        "",
        "```",
        "python benchmarks/inference_vs_exact.py           # everything, ≈ 45-50 min on a shared 2-core CPU",
        "python benchmarks/inference_vs_exact.py --quick   # smoke run, ≈ 6 min, writes /tmp/inference_quick.md",
        "python benchmarks/inference_vs_exact.py --parts speed --ns 500,1000   # one part only",
        "```",
        "",
        "All numbers also go to a JSON file (`--json`, default `/tmp/<report name>.json`); "
        "`--report-only JSON` rewrites this page from it. `--notes FILE` appends hand-written notes.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if args.notes and Path(args.notes).is_file():
        text += "\n" + Path(args.notes).read_text()
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="posterior,speed")
    ap.add_argument("--n-post", type=int, default=400)
    ap.add_argument("--post-warmup", type=int, default=500)
    ap.add_argument("--post-samples", type=int, default=1000)
    ap.add_argument("--post-pinn-warmup", type=int, default=300)
    ap.add_argument("--post-pinn-samples", type=int, default=300)
    ap.add_argument("--box", action="store_true",
                    help="also the exact GP with the box covariance (9 images; ≈ 50× the exact GP's gradient cost)")
    ap.add_argument("--box-warmup", type=int, default=200)
    ap.add_argument("--box-samples", type=int, default=200)
    ap.add_argument("--no-nu-free", dest="nu_free", action="store_false")
    ap.add_argument("--n-nu", type=int, default=200, help="sites for the ν-free comparison")
    ap.add_argument("--nu-warmup", type=int, default=200)
    ap.add_argument("--nu-samples", type=int, default=200)
    ap.add_argument("--nu-collapsed", choices=("auto", "yes", "no"), default="auto",
                    help="pinnprob's parameterisation for ν free (auto: fit's heuristic)")
    ap.add_argument("--ns", default="500,1000,2000")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"speed part: any of {','.join(METHODS)}")
    ap.add_argument("--grad-only", default="", help="methods whose gradient cost is measured but that are not run")
    ap.add_argument("--small-buffer-posterior", action="store_true",
                    help="posterior part: also pinnprob with --small-buffer")
    ap.add_argument("--pinn-buffer", type=float, default=0.5, help="fit's buffer in the posterior part")
    ap.add_argument("--small-buffer", type=float, default=0.2, help="the buffer of the *_b pinnprob variants")
    ap.add_argument("--first-run-factor", type=float, default=3.0,
                    help="the first run of a method goes ahead (reduced) if predicted ≤ this × --max-run-s")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--reduced-warmup", type=int, default=150)
    ap.add_argument("--reduced-samples", type=int, default=150)
    ap.add_argument("--max-run-s", type=float, default=270.0)
    # the smallest HSGP setting tried that matches pinnprob's accuracy on the n = 400 data (docs/results/inference.md)
    ap.add_argument("--hsgp-m", type=int, default=65, help="HSGP basis functions per dimension")
    ap.add_argument("--hsgp-c", type=float, default=2.0, help="HSGP box factor (× the data's half-width)")
    ap.add_argument("--out", default=None, help="markdown report (default docs/results/inference.md)")
    ap.add_argument("--json", default=None, help="all numbers as JSON (default next to --out, in /tmp)")
    ap.add_argument("--notes", default=None, help="markdown appended to the report (hand-written notes)")
    ap.add_argument("--report-only", default=None, metavar="JSON[,JSON...]",
                    help="rewrite the report from the JSON of earlier runs, without running anything; speed "
                         "entries of later files (e.g. a --methods run) replace those of earlier ones")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_post, args.post_warmup, args.post_samples = 100, 50, 50
        args.post_pinn_warmup, args.post_pinn_samples = 20, 20
        args.nu_warmup, args.nu_samples, args.n_nu = 20, 20, 100
        args.ns, args.warmup, args.samples = "150,250", 40, 40
        args.reduced_warmup, args.reduced_samples, args.max_run_s = 15, 15, 20.0
    args.ns = [int(v) for v in str(args.ns).split(",")]
    args.methods = [m for m in str(args.methods).split(",") if m]
    args.grad_only = [m for m in str(args.grad_only).split(",") if m]
    out = Path(args.out) if args.out else (Path("/tmp/inference_quick.md") if args.quick
                                           else ROOT / "docs" / "results" / "inference.md")
    jpath = Path(args.json) if args.json else Path("/tmp") / (out.stem + ".json")
    if args.report_only:
        files = args.report_only.split(",")
        results = json.loads(Path(files[0]).read_text())
        for extra in files[1:]:
            more = json.loads(Path(extra).read_text())
            if "posterior" in more:
                keep = results.get("posterior", {})
                results["posterior"] = {**keep, **more["posterior"]} if "exact" not in more["posterior"] else \
                    {**more["posterior"], **({"hsgp": keep["hsgp"]} if "hsgp" in keep and "hsgp" not in more["posterior"] else {})}
            if "speed" in more:
                for part in ("grads", "runs", "info"):
                    results["speed"][part].update(more["speed"][part])
                results.setdefault("supplements", []).append({"file": extra, "args": more["args"],
                                                              "wall_s": more["wall_s"]})
        # every HSGP accuracy run among the files (one per (m, c)), for the sweep table
        sweep = {}
        for f in files:
            h = json.loads(Path(f).read_text()).get("posterior", {}).get("hsgp")
            if h is not None:
                sweep[(h["m"], h["c"])] = h
        if len(sweep) > 1 and "posterior" in results:
            results["posterior"]["hsgp_sweep"] = list(sweep.values())
        for k, v in results["args"].items():  # the settings of that run, for the text
            if k not in ("report_only", "out", "notes", "methods"):
                setattr(args, k, v)
        write_report(results, args, out)
        print(f"wrote {out}")
        return
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)

    warnings.filterwarnings("ignore", category=UserWarning)
    prior = pinnprob.pretrained("matern2d")
    results = {"prior": repr(prior), "args": {k: v for k, v in vars(args).items()}}
    parts = args.parts.split(",")
    if "speed" in parts:
        results["speed"] = part_speed(prior, args, log)
        jpath.write_text(json.dumps(results, indent=1, default=str))
    if "posterior" in parts:
        results["posterior"] = part_posterior(prior, args, log)
    if "hsgp_posterior" in parts:
        results.setdefault("posterior", {})["hsgp"] = part_hsgp_posterior(args, log)
    results["wall_s"] = time.perf_counter() - t0
    results["timing_note"] = f"This run took {results['wall_s'] / 60:.1f} min. "
    jpath.write_text(json.dumps(results, indent=1, default=str))
    write_report(results, args, out)
    log(f"wrote {out} and {jpath}")


if __name__ == "__main__":
    main()
