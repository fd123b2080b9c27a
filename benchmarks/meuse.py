"""Meuse case study: pinnprob against exact Gaussian-process kriging, 10-fold cross-validation.

    python benchmarks/meuse.py            # the full run (writes docs/case_studies/meuse.md and figures)
    python benchmarks/meuse.py --quick    # a smoke run: 2 folds, tiny MCMC, writes under /tmp

Model (both methods, same priors): log zinc = intercept + β·√dist + f(x, y) + ε, f a Matérn field
with practical range ρ, marginal sd σ and smoothness ν uniform over the shipped prior's ν range,
ε ~ N(0, noise²). Priors are those ``pinnprob.fit`` uses by default, passed explicitly to both:
range: PC prior with P(ρ < extent/10) = 0.05 truncated to the shipped prior's range in metres;
σ: PC prior with P(σ > 2 sd(y)) = 0.05; noise: half-normal(sd(y)); intercept (at mean √dist):
N(mean y, 2 sd y); β: N(0, 2 sd(y) / sd(√dist)).

* pinnprob: ``pinnprob.fit`` (NUTS, ν free), ``pinnprob.predict(..., return_draws=True)``.
* exact GP: the same model with a dense Matérn covariance on R² (K_ν by quadrature, differentiable
  in ν), the field integrated out, sampled with NumPyro's NUTS; the posterior predictive at held-out
  sites is exact given each draw of θ = (ρ, σ, ν, noise, intercept, β): the Gaussian conditional
  (kriging with the covariate), plus the noise.

Scores on held-out sites (log scale), from posterior predictive draws of a new measurement (noise
included): RMSE of the predictive mean, CRPS by the sample formula E|X − y| − ½ E|X − X'|, and the
coverage of the central 90 % interval. Folds: a fixed random permutation (seed 0) cut into 10.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

import pinnprob
from pinnprob import truth
from pinnprob.datasets import meuse
from pinnprob.inference.model import obs_scale, truncation_tail
from pinnprob.inference.predict import fit_prior
from pinnprob.inference.priors import PCRange, pc_sigma, truncate_to_range

ROOT = Path(__file__).resolve().parents[1]
BUFFER = 0.5  # pinnprob.fit's default: the modelled square is the data's bounding square × 2


# ---------------------------------------------------------------------------------------------
# data and priors
# ---------------------------------------------------------------------------------------------
def load():
    """Sites X (155, 2) in km, log zinc y (155,), covariate √dist z (155,)."""
    df = meuse()
    X = df[["x", "y"]].to_numpy(np.float64) / 1000.0
    return X, np.log(df["zinc"].to_numpy(np.float64)), np.sqrt(df["dist"].to_numpy(np.float64))


def priors(X, y, prior):
    """The priors pinnprob.fit uses by default for these data, as explicit NumPyro distributions."""
    extent = float(np.max(X.max(0) - X.min(0)))
    scale = extent * (1 + 2 * BUFFER)  # the side of the modelled square (user units)
    lo, hi = prior.param_range.range[0] * scale, prior.param_range.range[1] * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation to the prior's range is by design
        R = truncate_to_range(PCRange(extent / 10, 0.05), lo, hi, "range")
    ysd = float(y.std())
    return {"range": R, "sigma": pc_sigma(2 * ysd, 0.05), "noise": dist.HalfNormal(ysd),
            "nu": dist.Uniform(*prior.param_range.nu)}


# ---------------------------------------------------------------------------------------------
# exact GP: Matérn on R², any ν, dense Cholesky
# ---------------------------------------------------------------------------------------------
def _dist(A, B):
    return jnp.sqrt(jnp.maximum(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1), 0.0))


def range_floor() -> float:
    """The shortest range (km) the shipped prior covers for these data with fit's default buffer."""
    X = load()[0]
    return pinnprob.pretrained("matern2d").param_range.range[0] * float(np.max(np.ptp(X, 0))) * (1 + 2 * BUFFER)


def exact_gp_model(X, y, z, P):
    """y ~ N(intercept + β z, σ² R(ρ, ν) + noise² I), the field integrated out (dense, exact)."""
    D = _dist(jnp.asarray(X), jnp.asarray(X))
    n = len(y)
    ymean, ysd, zmean, zsd = float(y.mean()), float(y.std()), float(z.mean()), float(z.std())
    zc = jnp.asarray(z - zmean)

    def model(y=None):
        rho = numpyro.sample("range", P["range"])
        sigma = numpyro.sample("sigma", P["sigma"])
        nu = numpyro.sample("nu", P["nu"])
        noise = numpyro.sample("noise", P["noise"])
        icpt = numpyro.sample("intercept_centered", dist.Normal(ymean, 2 * ysd))
        beta = numpyro.sample("beta", dist.Normal(0.0, 2 * ysd / zsd))
        numpyro.deterministic("intercept", icpt - beta * zmean)
        K = sigma**2 * truth.matern_correlation_jax(D, range=rho, nu=nu) + (noise**2 + 1e-6) * jnp.eye(n)
        numpyro.sample("y", dist.MultivariateNormal(icpt + beta * zc, scale_tril=jnp.linalg.cholesky(K)), obs=y)

    return model


def exact_gp_fit(X, y, z, P, warmup, samples, seed):
    """Posterior draws (dict of (S,) arrays) of the exact GP, and the sampling seconds."""
    mcmc = MCMC(NUTS(exact_gp_model(X, y, z, P)), num_warmup=warmup, num_samples=samples, progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(seed), y=jnp.asarray(y))
    s = {k: np.asarray(jax.block_until_ready(v)) for k, v in mcmc.get_samples().items()}
    s["diverging"] = np.asarray(mcmc.get_extra_fields()["diverging"])
    return s, time.perf_counter() - t0


def exact_gp_predict(s, X, y, z, Xt, zt, seed):
    """Draws (S, n_test) of a new measurement at Xt: for each posterior draw θ, one draw from the exact
    Gaussian conditional of the field at each held-out site (its marginal), plus the covariate and noise."""
    Xj, Xtj, yj = jnp.asarray(X), jnp.asarray(Xt), jnp.asarray(y)
    D, Dt = _dist(Xj, Xj), _dist(Xtj, Xj)
    n = len(y)

    @jax.jit
    def one(key, rho, sigma, nu, noise, icpt, beta):
        K = sigma**2 * truth.matern_correlation_jax(D, range=rho, nu=nu) + (noise**2 + 1e-6) * jnp.eye(n)
        k = sigma**2 * truth.matern_correlation_jax(Dt, range=rho, nu=nu)  # (n_test, n)
        L = jnp.linalg.cholesky(K)
        r = yj - icpt - beta * jnp.asarray(z)
        alpha = jax.scipy.linalg.cho_solve((L, True), r)
        V = jax.scipy.linalg.solve_triangular(L, k.T, lower=True)
        mean = icpt + beta * jnp.asarray(zt) + k @ alpha
        var = jnp.maximum(sigma**2 - (V**2).sum(0), 0.0) + noise**2
        return mean + jnp.sqrt(var) * jax.random.normal(key, mean.shape)

    keys = jax.random.split(jax.random.key(seed), len(s["range"]))
    return np.asarray(jax.vmap(one)(keys, s["range"], s["sigma"], s["nu"], s["noise"], s["intercept"], s["beta"]))


# ---------------------------------------------------------------------------------------------
# pinnprob
# ---------------------------------------------------------------------------------------------
def pinnprob_fit(prior, X, y, z, P, warmup, samples, seed, field_draws=None):
    t0 = time.perf_counter()
    idata = pinnprob.fit(X, y, prior=prior, covariates=z, range_prior=P["range"], sigma_prior=P["sigma"], noise_prior=P["noise"],
                         num_warmup=warmup, num_samples=samples, seed=seed, progress_bar=False,
                         field_draws=field_draws)
    return idata, time.perf_counter() - t0


def pinnprob_predict(idata, prior, Xt, zt, seed):
    """Draws (S, n_test) of a new measurement: predict's conditional simulations of the linear predictor
    plus the observation error of the same posterior draw, N(0, noise² + σ²·tail): the variance of the
    modes fit truncated goes with the noise, as in fit's likelihood (``prior``: the untruncated prior)."""
    draws = pinnprob.predict(idata, Xt, covariates=zt, return_draws=True, seed=seed)["draws"]
    post = idata.posterior
    ok = ~np.isnan(post["field_latent"].values).any(-1)  # predict's draws, in its (chain, draw) order
    if ok.sum() != draws.shape[0]:
        raise RuntimeError(f"predict returned {draws.shape[0]} draws for {ok.sum()} posterior draws")
    kept = fit_prior(idata)[0]
    full = prior if kept.config.lengths is None else prior.on_box(kept.config.lengths)  # fit's box
    tail = truncation_tail(full.spde, full.generator.basis.eigenvalues, kept.latent_dim)
    scale = json.loads(idata.attrs["pinnprob"])["coordinate_map"]["scale"]
    theta = kept.param_range.theta(range=post["range"].values[ok] / scale, nu=post["nu"].values[ok])
    sd = np.asarray(jax.vmap(lambda *a: obs_scale(*a, tail))(post["noise"].values[ok], post["sigma"].values[ok], theta))
    eps = np.random.default_rng(seed).standard_normal(draws.shape)
    return draws + sd[:, None] * eps


# ---------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------
def crps_samples(draws, y):
    """CRPS of the predictive sample ``draws`` (S, n) at observations y (n,), per site (n,):
    E|X − y| − ½ E|X − X'| with the empirical law of the draws (the sorted-sample identity for the
    second term: E|X − X'| = 2/S² Σ_i (2i − S − 1) x_(i))."""
    S = draws.shape[0]
    a = np.abs(draws - y[None]).mean(0)
    xs = np.sort(draws, 0)
    w = (2 * np.arange(1, S + 1) - S - 1)[:, None]
    return a - (w * xs).sum(0) / S**2


def scores(draws, y):
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    return {"rmse": float(np.sqrt(np.mean((draws.mean(0) - y) ** 2))), "crps": float(crps_samples(draws, y).mean()),
            "cover90": float(np.mean((y >= lo) & (y <= hi)))}


def folds(n, k, seed=0):
    """k folds of a fixed random permutation of range(n)."""
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def nearest(X, Xg, v):
    """Nearest-neighbour interpolation of v (n,) from sites X (n, 2) to Xg (m, 2), and the distance."""
    d2 = ((Xg[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    i = d2.argmin(1)
    return v[i], np.sqrt(d2[np.arange(len(Xg)), i])


def figures(idata, X, y, z, P, fig_dir, grid, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pinnprob.plotting import plot_pair, plot_prediction_map, plot_trace

    fig_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_trace(idata).savefig(fig_dir / "meuse_trace.png", dpi=80)
        plot_pair(idata).savefig(fig_dir / "meuse_pair.png", dpi=80)
    lo, hi = X.min(0), X.max(0)
    gx, gy = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], int(grid * (hi[1] - lo[1]) / (hi[0] - lo[0])))
    G = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    zg, dnear = nearest(X, G, z)
    pred = pinnprob.predict(idata, G, covariates=zg, seed=seed)
    far = dnear > 0.25  # km: blank the map farther than 250 m from every sample
    for stat, cmap, label in (("mean", "viridis", "posterior mean of log zinc"),
                              ("sd", "magma", "posterior sd of log zinc")):
        v = np.where(far, np.nan, pred[stat])
        fig = plot_prediction_map(G, v, data_sites=X, grid_shape=(len(gx), len(gy)), title=label, label=label,
                                  cmap=cmap, xlabel="x (km, RD)", ylabel="y (km, RD)")
        fig.savefig(fig_dir / f"meuse_map_{stat}.png", dpi=100)
        plt.close(fig)
    # posterior densities of the covariance parameters: pinnprob (full data) against the prior
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.8))
    key = jax.random.key(seed)
    for i, (ax, name) in enumerate(zip(axes, ("range", "sigma", "nu", "noise"))):
        v = idata.posterior[name].values.ravel()
        ax.hist(v, bins=30, density=True, alpha=0.6, color="C0", label="posterior")
        pr = np.asarray(P[name].sample(jax.random.fold_in(key, i), (4000,)))
        ax.hist(pr[(pr >= np.quantile(pr, 0.005)) & (pr <= np.quantile(pr, 0.995))], bins=40, density=True,
                histtype="step", color="k", label="prior")
        ax.set_title({"range": "range (km)", "sigma": "σ", "nu": "ν", "noise": "noise sd"}[name])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / "meuse_posterior.png", dpi=100)
    plt.close("all")


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 folds, 30 + 30 draws; writes under /tmp")
    ap.add_argument("--warmup", type=int, default=300, help="NUTS warm-up of the full-data fits")
    ap.add_argument("--samples", type=int, default=300, help="NUTS draws of the full-data fits")
    ap.add_argument("--cv-warmup", type=int, default=100, help="NUTS warm-up of each cross-validation fit")
    ap.add_argument("--cv-samples", type=int, default=100, help="NUTS draws of each cross-validation fit")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="only rewrite the page from the JSON of the last run")
    ap.add_argument("--shared", action="store_true", help="say on the page that other work shared the machine")
    args = ap.parse_args(argv)
    if args.render:
        doc = ROOT / "docs/case_studies/meuse.md"
        doc.write_text(render(json.loads(doc.with_suffix(".json").read_text()), ROOT / "docs/case_studies/figures", doc))
        return 0
    warm, samp, nfold = (30, 30, 2) if args.quick else (args.warmup, args.samples, args.folds)
    cv_warm, cv_samp = (30, 30) if args.quick else (args.cv_warmup, args.cv_samples)
    doc = Path("/tmp/meuse_quick.md") if args.quick else ROOT / "docs/case_studies/meuse.md"
    fig_dir = Path("/tmp/meuse_quick_figures") if args.quick else ROOT / "docs/case_studies/figures"
    t_start = time.perf_counter()

    X, y, z = load()
    prior = pinnprob.pretrained("matern2d")
    P = priors(X, y, prior)

    # the full-data fit: posterior summaries and maps
    idata, t_full = pinnprob_fit(prior, X, y, z, P, warm, samp, args.seed, field_draws=100)
    s_ex, t_ex_full = exact_gp_fit(X, y, z, P, warm, samp, args.seed)
    names = ["range", "sigma", "nu", "noise", "intercept", "beta"]
    summ = {"pinnprob": {}, "exact GP": {}}
    for k in names:
        v = idata.posterior[k].values.ravel()
        summ["pinnprob"][k] = [float(v.mean()), float(v.std()), *map(float, np.quantile(v, [0.05, 0.95]))]
        w = s_ex[k].ravel()
        summ["exact GP"][k] = [float(w.mean()), float(w.std()), *map(float, np.quantile(w, [0.05, 0.95]))]
    div_full = {"pinnprob": int(idata.sample_stats["diverging"].values.sum()), "exact GP": int(s_ex["diverging"].sum())}
    meta = json.loads(idata.attrs["pinnprob"])
    fit_info = {"collapsed_path": meta.get("collapsed_path"), "site_covariance": meta.get("site_covariance"),
                "modes": fit_prior(idata)[0].latent_dim, "nu_range": list(prior.param_range.nu),
                "range_floor_unit": prior.param_range.range[0], "range_floor_km": range_floor()}
    figures(idata, X, y, z, P, fig_dir, grid=40 if args.quick else 120, seed=args.seed)
    print("full fit done", time.perf_counter() - t_start, flush=True)

    # cross-validation
    rows = []
    all_draws = {"pinnprob": np.full((cv_samp, len(y)), np.nan), "exact GP": np.full((cv_samp, len(y)), np.nan)}
    for f, test in enumerate(folds(len(y), args.folds)[:nfold]):
        train = np.setdiff1d(np.arange(len(y)), test)
        Pf = priors(X[train], y[train], prior)
        idf, t_p = pinnprob_fit(prior, X[train], y[train], z[train], Pf, cv_warm, cv_samp, args.seed + f)
        dp = pinnprob_predict(idf, prior, X[test], z[test], args.seed + f)
        sf, t_e = exact_gp_fit(X[train], y[train], z[train], Pf, cv_warm, cv_samp, args.seed + f)
        de = exact_gp_predict(sf, X[train], y[train], z[train], X[test], z[test], args.seed + f)
        all_draws["pinnprob"][:, test], all_draws["exact GP"][:, test] = dp, de
        for name, d, t, nd in (("pinnprob", dp, t_p, int(idf.sample_stats["diverging"].values.sum())),
                               ("exact GP", de, t_e, int(sf["diverging"].sum()))):
            rows.append({"fold": f, "method": name, "n_test": len(test), "seconds": t, "divergences": nd,
                         **scores(d, y[test])})
        print(f"fold {f}: " + ", ".join(f"{r['method']} rmse {r['rmse']:.3f} crps {r['crps']:.3f} ({r['seconds']:.0f} s)"
                                         for r in rows[-2:]), flush=True)
        report(args, nfold, warm, samp, cv_warm, cv_samp, summ, div_full, t_full, t_ex_full, rows, all_draws, y,
               t_start, doc, fig_dir, fit_info)


def _fold_se(rows, method: str, score: str) -> float:
    """Standard error over folds of a per-fold score: sd (ddof = 1) / √folds."""
    v = [r[score] for r in rows if r["method"] == method]
    return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def report(args, nfold, warm, samp, cv_warm, cv_samp, summ, div_full, t_full, t_ex_full, rows, all_draws, y,
           t_start, doc, fig_dir, fit_info):
    """Pool the folds run so far and write the JSON and the page (rewritten after every fold)."""
    tested = ~np.isnan(all_draws["pinnprob"][0])
    pooled = {m: scores(all_draws[m][:, tested], y[tested]) for m in all_draws}
    for m, c in pooled.items():
        c["seconds"] = float(sum(r["seconds"] for r in rows if r["method"] == m))
        c["divergences"] = int(sum(r["divergences"] for r in rows if r["method"] == m))
    # paired difference of the per-site CRPS (pinnprob − exact)
    cp = crps_samples(all_draws["pinnprob"][:, tested], y[tested])
    ce = crps_samples(all_draws["exact GP"][:, tested], y[tested])
    dcrps = (float((cp - ce).mean()), float((cp - ce).std() / math.sqrt(tested.sum())))
    total = time.perf_counter() - t_start
    result = {"settings": {"warmup": warm, "samples": samp, "cv_warmup": cv_warm, "cv_samples": cv_samp,
                           "chains": 1, "folds": args.folds, "folds_run": nfold,
                           "seed": args.seed, "quick": args.quick, "predictive_tail": True, "shared": args.shared,
                           "nu_range": fit_info["nu_range"], "range_floor_unit": fit_info["range_floor_unit"],
                           "range_floor_km": fit_info["range_floor_km"]},
              "collapsed_path": fit_info["collapsed_path"], "site_covariance": fit_info["site_covariance"],
              "modes": fit_info["modes"],
              "posterior_full": summ, "divergences_full": div_full, "seconds_full": {"pinnprob": t_full,
                                                                                   "exact GP": t_ex_full},
              "cv_folds": rows, "cv": pooled, "crps_diff": dcrps, "total_seconds": total,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                         f"({len(os.sched_getaffinity(0))} given to this process), "
                         f"jax {jax.__version__}, numpyro {numpyro.__version__}, {jax.default_backend()}"}
    result["settings"]["folds_run"] = len(rows) // 2
    (doc.with_suffix(".json")).write_text(json.dumps(result, indent=1))
    doc.write_text(render(result, fig_dir, doc))
    print(f"wrote {doc} ({total:.0f} s)", flush=True)


def render(r, fig_dir, doc) -> str:
    s = r["settings"]
    rel = os.path.relpath(fig_dir, doc.parent)
    cv = r["cv"]
    p, e = r["posterior_full"]["pinnprob"], r["posterior_full"]["exact GP"]
    lines = [
        "# Case study: zinc in the Meuse flood plain",
        "",
        "<!-- generated by benchmarks/meuse.py; edit the script, not this page -->",
        "",
        ("The Meuse data (Pebesma & Bivand; R package `sp`) are 155 topsoil samples of heavy metals in the "
         "flood plain of the river Meuse near Stein (NL), the standard example of geostatistics courses. "
         "We model log zinc with the square root of the (normalised) distance to the river as a covariate, "
         "the classical choice of the `gstat` tutorials, and a Matérn field:"),
        "",
        "    log zinc = intercept + β √dist + f(x, y) + ε,   f ~ Matérn(range ρ, σ, ν),   ε ~ N(0, noise²)",
        "",
        (f"with ν free in [{s.get('nu_range', [1.0, 2.5])[0]:g}, {s.get('nu_range', [1.0, 2.5])[1]:g}] (the shipped "
         "prior's range), coordinates in km. The data are loaded from "
         "scikit-gstat (`pip install \"pinnprob[meuse]\"`, then `pinnprob.datasets.meuse()`); nothing is "
         "copied into this project. The script `examples/meuse.py` is the same analysis as a notebook; "
         "`python benchmarks/meuse.py` reproduces this page."),
        "",
        "## The two methods",
        "",
        ("* **pinnprob**: `pinnprob.fit(X, y, covariates=√dist)` with the shipped prior (NUTS, ν free; the "
         "field integrated out and recovered by Matheron's rule), `pinnprob.predict(..., return_draws=True)` "
         "for the held-out sites, plus the noise of each draw."),
        ("* **exact GP**: the same model with a dense Matérn covariance on R² (any ν; K_ν by quadrature), the "
         "field integrated out, NumPyro NUTS; the posterior predictive at held-out sites is exact: for each "
         "posterior draw the Gaussian conditional (kriging with the covariate) plus the noise."),
        "",
        ("Both use the same priors, those `fit` uses by default: range PC prior P(ρ < extent/10) = 0.05 "
         "truncated to the shipped prior's range (in km); σ PC prior P(σ > 2 sd y) = 0.05; noise "
         "half-normal(sd y); intercept N(mean y, 2 sd y); β N(0, 2 sd y / sd √dist). One difference is by "
         "design: pinnprob's field is the SPDE solution on a square twice the data's extent with Neumann "
         "boundaries (the law the prior was trained to), the exact GP's is stationary on R²."),
        "",
        (f"Settings: one NUTS chain everywhere; {s['warmup']} warm-up + {s['samples']} draws for the two "
         f"full-data fits, {s['cv_warmup']} + {s['cv_samples']} for each cross-validation fit (a fit costs "
         "tens of seconds here, for both methods); "
         f"{s['folds']}-fold cross-validation (a fixed random permutation, seed {s['seed']}), "
         f"{s['folds_run']} folds run. Machine: {r['machine']}"
         + (", the other cores busy with other work while it ran (both methods alike). " if s.get("shared") else ". ")
         + (f"The whole script ran in {r['total_seconds'] / 60:.1f} min."
            if s["folds_run"] == s["folds"] else
            f"**Partial run:** {s['folds_run']} of {s['folds']} folds, {r['total_seconds'] / 60:.1f} min so far; "
            "the scores below pool the held-out sites of those folds only.")),
        "",
        "## Posterior (all 155 sites)",
        "",
        "Mean ± sd and the 90 % interval.",
        "",
        "| parameter | pinnprob | 90 % | exact GP | 90 % |",
        "|---|---|---|---|---|",
    ]
    units = {"range": " (km)"}
    for k in ("range", "sigma", "nu", "noise", "intercept", "beta"):
        a, b = p[k], e[k]
        lines.append(f"| {k}{units.get(k, '')} | {a[0]:.3g} ± {a[1]:.2g} | [{a[2]:.3g}, {a[3]:.3g}] | "
                     f"{b[0]:.3g} ± {b[1]:.2g} | [{b[2]:.3g}, {b[3]:.3g}] |")
    lines += [
        "",
        (f"Divergent transitions: pinnprob {r['divergences_full']['pinnprob']}, exact GP "
         f"{r['divergences_full']['exact GP']}. Time of the fit (one process, "
         "compilation included; for pinnprob also the recovery of the field): "
         f"pinnprob {r['seconds_full']['pinnprob']:.0f} s, exact GP {r['seconds_full']['exact GP']:.0f} s. "
         + (f"`fit` integrated the field out and formed the 155 × 155 covariance from a site covariance of rank "
            f"{r['site_covariance']['rank']} (relative error bound {r['site_covariance']['error_bound']:.1e} against "
            f"the prior's {r['modes']} modes; `collapsed_path` = '{r['collapsed_path']}'), so a gradient costs a "
            "155 × 155 Cholesky, as the exact GP's does."
            if r.get("collapsed_path") == "reduced" else
            "This run predates the site covariance: `fit`'s collapsed likelihood formed the covariance from the "
            "prior's modes (several thousand with ν free and this range floor; O(n²m)), so the exact GP was the "
            "cheaper one at n = 155.")),
        "",
        (f"**The range prior has a floor.** The shipped prior is valid for ranges down to {s.get('range_floor_unit', 0.05):g} "
         "of its unit square; with `fit`'s default buffer the square is twice the data's extent, so ranges below "
         f"{s.get('range_floor_km', range_floor()):.2f} km are outside it and the range prior is truncated there (for both "
         "methods, so the comparison is like for like)."),
        "",
        f"![posterior of the covariance parameters]({rel}/meuse_posterior.png)",
        "",
        f"![pair plot]({rel}/meuse_pair.png)",
        "",
        f"![trace plot]({rel}/meuse_trace.png)",
        "",
        "## Prediction map",
        "",
        ("Posterior mean and sd of the noise-free log zinc (intercept + β √dist + f) on a grid over the "
         "bounding box of the samples (from 100 evenly spaced posterior draws of the full-data fit). **The covariate on the grid is an approximation:** `dist` is only "
         "known at the 155 samples here (scikit-gstat does not ship the `meuse.grid` table), so at each grid "
         "cell √dist is taken from the nearest sample (nearest-neighbour interpolation), and cells farther "
         "than 250 m from every sample are left blank. The blocky pattern that this gives is the covariate's, "
         "not the field's; with the real distance map the mean would follow the river smoothly."),
        "",
        f"![posterior mean]({rel}/meuse_map_mean.png)",
        "",
        f"![posterior sd]({rel}/meuse_map_sd.png)",
        "",
        "## Cross-validation",
        "",
        ("Held-out sites, log scale, scores pooled over all held-out sites (± the standard error over folds). "
         "CRPS from the posterior predictive draws of a new measurement (noise included) by the sample "
         "formula E|X − y| − ½ E|X − X'|; coverage of the central 90 % predictive interval."),
        "",
        "| method | RMSE | CRPS | 90 % coverage | divergences | time of the fits |",
        "|---|---|---|---|---|---|",
    ]
    for m in ("pinnprob", "exact GP"):
        c = cv[m]
        lines.append(f"| {m} | {c['rmse']:.3f} ± {_fold_se(r['cv_folds'], m, 'rmse'):.3f} | {c['crps']:.3f} ± "
                     f"{_fold_se(r['cv_folds'], m, 'crps'):.3f} "
                     f"| {100 * c['cover90']:.0f} % | {c['divergences']} | {c['seconds']:.0f} s |")
    d, se = r["crps_diff"]
    lines += [
        "",
        (f"Paired difference of the per-site CRPS, pinnprob − exact GP: {d:+.4f} ± {se:.4f} (mean ± standard "
         "error over held-out sites)."
         + ("" if r["settings"].get("predictive_tail") else
            " This run predates one correction: pinnprob's draws of a new measurement added N(0, noise²) only, "
            "without the variance of the truncated modes that `fit`'s likelihood adds to the noise (at most "
            "`mode_tol` = 1 % of σ², about 1 % of the noise variance here), so its predictive sd was up to "
            "about 0.7 % too small. The script now adds it.")),
        *(["", r["notes"]] if r.get("notes") else []),  # written by hand into the JSON, kept by --render
        "",
        "Per fold:",
        "",
        "| fold | method | n test | RMSE | CRPS | 90 % cov. | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["cv_folds"]:
        lines.append(f"| {row['fold']} | {row['method']} | {row['n_test']} | {row['rmse']:.3f} | {row['crps']:.3f} | "
                     f"{100 * row['cover90']:.0f} % | {row['seconds']:.0f} |")
    lines += ["", "Numbers: `meuse.json` beside this page.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
