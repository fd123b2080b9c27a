"""Posterior of the non-stationary prior against the finite-element model itself (issue 10's Must show).

    python benchmarks/nonstationary_posterior.py [--prior FILE] [--n 400] [--draws 1500] [--ref-mesh 150]
        [--check-mesh 100] [--sites LO HI] [--tag T] [--out docs/results]

Data: n sites uniform on the unit square, a field drawn exactly from P1 finite elements (mesh 300)
with a range that doubles along the diagonal (range 0.14 at the centre, trends ln 2 / 2 in x₁ and
x₂), anisotropy ratio 2 at 30°, σ = 1, plus Gaussian noise 0.2.

The model, on the prior's own box (the unit square, Neumann walls, no coordinate map): the five SPDE
parameters, σ and the noise, with the priors ``pinnprob.fit`` uses by default for these data (range:
PC prior P(range < 0.1) = 0.05 truncated to the prior's box; trends, angle uniform; ratio
log-uniform over the box; σ: PC prior P(σ > 2 sd(y)) = 0.05; noise half-normal with scale sd(y)).

Two posteriors of these seven parameters, each from its own marginal likelihood:
* the generator's: log N(y | 0, σ²(ΨΨᵀ + diag δ) + s² I) (the collapsed likelihood ``fit`` samples);
* the reference, without the generator: the FEM GMRF on a ``--ref-mesh`` mesh,
  log N(y | 0, σ² A Q⁻¹ Aᵀ + s² I) by sparse factorisations (R-INLA's way; checked against the dense
  covariance to 1e-12 on a small mesh, and against the ``--check-mesh`` posterior for its mesh error).

Both are computed by self-normalised importance sampling from one proposal — an equal mixture of two
multivariate t (4 degrees of freedom, 1.5 × the reference posterior's inverse Hessian on the check
mesh), one at each posterior's mode — so that the two share their draws and the difference of their
estimates has a small Monte Carlo error (bootstrap over draws). ``--sites LO HI`` puts the sites on
[LO, HI]² (the default, the whole square, includes its corners, where the generator is weakest);
``--skip-check`` leaves out the check mesh's posterior. NUTS through ``fit`` is not used here: one gradient
of the generator's collapsed likelihood costs seconds at n = 400 (docs/results/nonstationary.md),
and a thousand-draw chain would take hours on this CPU.

Writes docs/results/nonstationary_posterior.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import scipy.optimize as so
from _common import central_hessian, gmrf_log_marginal  # benchmarks/ is sys.path[0]
from nonstationary import fem_for

import pinnprob
from pinnprob.inference.collapsed import CollapsedGaussian
from pinnprob.inference.distribution import GenerativeField
from pinnprob.inference.fit import model_param_priors
from pinnprob.inference.priors import pc_sigma

ROOT = Path(__file__).resolve().parents[1]
TRUE = {"range": 0.14, "range_trend_x1": 0.5 * math.log(2), "range_trend_x2": 0.5 * math.log(2),
        "angle": math.pi / 6, "ratio": 2.0, "sigma": 1.0, "noise": 0.2}
NAMES = ["range", "range_trend_x1", "range_trend_x2", "angle", "ratio", "sigma", "noise"]
LOG = {"range", "ratio", "sigma", "noise"}  # sampled in log coordinates


def to_phi(v: dict) -> np.ndarray:
    return np.array([math.log(v[k]) if k in LOG else v[k] for k in NAMES])


def to_values(phi) -> dict:
    return {k: float(math.exp(p)) if k in LOG else float(p) for k, p in zip(NAMES, phi)}


def make_priors(space, ysd: float, extent: float = 1.0) -> dict:
    """fit's default priors for data on the unit square (scale 1; the range prior's ``extent``, the data's
    longest side, 1 by default)."""
    out = model_param_priors(space, 1.0, extent)
    out["sigma"] = pc_sigma(2.0 * ysd, 0.05)
    out["noise"] = dist.HalfNormal(ysd)
    return out


def log_prior(phi, priors) -> float:
    """log p(φ): the priors in natural units plus the log-coordinates' Jacobians; −inf outside."""
    v = to_values(phi)
    lp = 0.0
    for k in NAMES:
        d = priors[k]
        x = jnp.asarray(v[k])
        if not bool(d.support(x)):
            return -math.inf
        lp += float(d.log_prob(x)) + (math.log(v[k]) if k in LOG else 0.0)
    return lp if math.isfinite(lp) else -math.inf


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default=None, help="a prior file (default: the shipped matern2d-nonstationary)")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--draws", type=int, default=1500)
    ap.add_argument("--truth-mesh", type=int, default=300)
    ap.add_argument("--ref-mesh", type=int, default=150)
    ap.add_argument("--check-mesh", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sites", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                    help="the sites are uniform on [LO, HI]² (default: the whole square)")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    ap.add_argument("--skip-check", action="store_true", help="do not evaluate the check mesh's posterior")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--notes", default=None, help="a file whose text goes under 'Notes'")
    ap.add_argument("--render", action="store_true", help="only rewrite the page from its JSON (and --notes)")
    args = ap.parse_args(argv)
    if args.render:
        out = Path(args.out)
        res = json.loads((out / f"nonstationary_posterior{args.tag}.json").read_text())
        if args.notes:
            res["notes"] = Path(args.notes).read_text()
            (out / f"nonstationary_posterior{args.tag}.json").write_text(json.dumps(res, indent=1))
        write(res, out / f"nonstationary_posterior{args.tag}.md")
        return 0
    prior = pinnprob.pretrained("matern2d-nonstationary") if args.prior is None else pinnprob.load(args.prior)
    space = prior.param_range
    spde_names = list(space.names)
    assert spde_names == NAMES[:5], spde_names

    # -- data ------------------------------------------------------------------------------------
    rng = np.random.default_rng(args.seed)
    X = rng.uniform(args.sites[0], args.sites[1], (args.n, 2))
    t0 = time.perf_counter()
    truth = fem_for(TRUE, args.truth_mesh)
    y = TRUE["sigma"] * truth.sample(args.seed + 1, X, 1)[0] + TRUE["noise"] * rng.standard_normal(args.n)
    print(f"data: n = {args.n}, FEM mesh {args.truth_mesh} ({time.perf_counter() - t0:.1f} s), sd(y) = {y.std():.3f}",
          flush=True)
    priors = make_priors(space, float(y.std()))

    # -- the two likelihoods ------------------------------------------------------------------------
    def fem_loglik(phi, mesh: int) -> float:
        v = to_values(phi)
        fem = fem_for(v, mesh)
        return gmrf_log_marginal(fem, fem.interpolation(X).tocsc(), y, v["sigma"], v["noise"])

    gen = prior.generator
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    feats = gen.features(Xj)

    @eqx.filter_jit
    def _gen_loglik(theta, sigma, noise):
        field = GenerativeField(gen, feats, theta, sigma)
        return CollapsedGaussian(field, jnp.zeros(args.n), noise).log_prob(yj)

    def gen_loglik(phi) -> float:
        v = to_values(phi)
        th = space.theta(**{k: v[k] for k in spde_names})
        return float(_gen_loglik(th, jnp.asarray(v["sigma"]), jnp.asarray(v["noise"])))  # arrays: no retrace

    # -- the proposal: the reference posterior's mode and curvature on the check mesh ------------------
    lo = np.array([math.log(space.axis("range").lo), -0.7, -0.7, 0.0, 0.0, math.log(0.05), math.log(0.01)])
    hi = np.array([math.log(space.axis("range").hi), 0.7, 0.7, math.pi, math.log(space.axis("ratio").hi),
                   math.log(10.0), math.log(2.0)])
    lo[1], hi[1] = space.axis("range_trend_x1").lo, space.axis("range_trend_x1").hi
    lo[2], hi[2] = space.axis("range_trend_x2").lo, space.axis("range_trend_x2").hi

    def neg_post(phi):
        lp = log_prior(phi, priors)
        return 1e10 if not math.isfinite(lp) else -(lp + fem_loglik(phi, args.check_mesh))

    t0 = time.perf_counter()
    start = np.clip(to_phi(TRUE), lo + 1e-3, hi - 1e-3)
    opt = so.minimize(neg_post, start, method="L-BFGS-B", bounds=list(zip(lo + 1e-6, hi - 1e-6)),
                      options={"eps": 1e-4, "maxiter": 200})
    mode = opt.x
    # central second differences, step 0.02 in φ (well inside the posterior's sd here)
    h = 0.02
    p = len(mode)
    mode = np.clip(mode, lo + 2 * h, hi - 2 * h)  # a mode on the box's edge: expand just inside it
    Hs = central_hessian(neg_post, mode, h)
    w, V = np.linalg.eigh(Hs)
    cov = (V / np.maximum(w, 0.1)) @ V.T  # inverse Hessian, eigenvalues floored (a flat direction: sd ≤ 3)
    print(f"mode {to_values(mode)} ({opt.nfev} evaluations, {time.perf_counter() - t0:.0f} s); "
          f"Laplace sd {np.sqrt(np.diag(cov)).round(3)}", flush=True)

    # the generator's own mode, so that the proposal covers both posteriors
    t0 = time.perf_counter()

    def neg_post_gen(phi):
        lp = log_prior(phi, priors)
        return 1e10 if not math.isfinite(lp) else -(lp + gen_loglik(phi))

    gen_loglik(mode)  # compile
    opt_g = so.minimize(neg_post_gen, mode, method="L-BFGS-B", bounds=list(zip(lo + 1e-6, hi - 1e-6)),
                        options={"eps": 1e-4, "maxiter": 200})
    mode_gen = np.clip(opt_g.x, lo + 2 * h, hi - 2 * h)
    print(f"generator's mode {to_values(mode_gen)} ({opt_g.nfev} evaluations, {time.perf_counter() - t0:.0f} s)",
          flush=True)

    # -- importance sampling: an equal mixture of two multivariate t (4 dof, 1.5 × the reference's inverse
    # Hessian), one at each mode --------------------------------------------------------------------
    df, scale = 4.0, 1.5
    L = np.linalg.cholesky(scale * cov)
    centres = np.stack([mode, mode_gen])
    zs = rng.standard_normal((args.draws, p))
    chi = rng.chisquare(df, args.draws)
    comp = np.arange(args.draws) % 2
    draws = centres[comp] + (zs @ L.T) / np.sqrt(chi / df)[:, None]

    def log_t(c):
        dev = np.linalg.solve(L, (draws - c).T).T
        return -0.5 * (df + p) * np.log1p(np.sum(dev**2, 1) / df)  # up to a common constant

    log_q = np.logaddexp(log_t(mode), log_t(mode_gen))
    rows = {"log_prior": [], "gen": [], "ref": [], "check": []}
    t_gen = t_ref = t_chk = 0.0
    gen_loglik(to_phi(TRUE))  # compile
    for i, phi in enumerate(draws):
        lp = log_prior(phi, priors)
        rows["log_prior"].append(lp)
        if not math.isfinite(lp):
            for k in ("gen", "ref", "check"):
                rows[k].append(-math.inf)
            continue
        t = time.perf_counter()
        rows["gen"].append(gen_loglik(phi))
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        rows["ref"].append(fem_loglik(phi, args.ref_mesh))
        t_ref += time.perf_counter() - t
        t = time.perf_counter()
        rows["check"].append(-math.inf if args.skip_check else fem_loglik(phi, args.check_mesh))
        t_chk += time.perf_counter() - t
        if (i + 1) % 100 == 0:
            print(f"{i + 1} draws: {t_gen:.0f} s generator, {t_ref:.0f} s reference, {t_chk:.0f} s check mesh",
                  flush=True)
    lp = np.array(rows["log_prior"])
    vals = np.array([[to_values(phi)[k] for k in NAMES] for phi in draws])  # (D, 7) in natural units

    def weights(ll):
        lw = lp + np.asarray(ll) - log_q
        lw = np.where(np.isfinite(lw), lw, -np.inf)
        w = np.exp(lw - lw.max())
        return w / w.sum()

    if args.skip_check:
        rows["check"] = rows["ref"]  # (not evaluated: the reference stands in, and the page says so)
    W = {k: weights(rows[k]) for k in ("gen", "ref", "check")}
    ess = {k: float(1.0 / np.sum(w**2)) for k, w in W.items()}

    def summary(w, idx=None):
        idx = np.arange(len(w)) if idx is None else idx
        ww = w[idx] / w[idx].sum()
        m = ww @ vals[idx]
        sd = np.sqrt(np.maximum(ww @ (vals[idx] - m) ** 2, 0.0))
        return m, sd

    est = {k: summary(w) for k, w in W.items()}
    boot = np.random.default_rng(args.seed + 2)
    diffs, ratios, cdiffs = [], [], []
    for _ in range(300):
        idx = boot.integers(0, len(draws), len(draws))
        (mg, sg), (mr, sr), (mc, sc) = (summary(W[k], idx) for k in ("gen", "ref", "check"))
        diffs.append((mg - mr) / sr)
        ratios.append(sg / sr)
        cdiffs.append((mc - mr) / sr)
    diffs, ratios, cdiffs = np.array(diffs), np.array(ratios), np.array(cdiffs)
    params = []
    for j, k in enumerate(NAMES):
        (mg, sg), (mr, sr), (mc, sc) = (est[q] for q in ("gen", "ref", "check"))
        params.append({"name": k, "true": TRUE[k], "gen_mean": mg[j], "gen_sd": sg[j], "ref_mean": mr[j],
                       "ref_sd": sr[j], "check_mean": mc[j], "check_sd": sc[j],
                       "mean_diff_in_sd": (mg[j] - mr[j]) / sr[j], "mean_diff_se": float(diffs[:, j].std()),
                       "sd_ratio": sg[j] / sr[j], "sd_ratio_se": float(ratios[:, j].std()),
                       "check_mean_diff_in_sd": (mc[j] - mr[j]) / sr[j], "check_sd_ratio": sc[j] / sr[j]})
        print(f"{k:>15}: generator {mg[j]:.4f} ± {sg[j]:.4f} | FEM {args.ref_mesh} {mr[j]:.4f} ± {sr[j]:.4f} | "
              f"Δ/sd {params[-1]['mean_diff_in_sd']:+.3f} (se {params[-1]['mean_diff_se']:.3f}), "
              f"sd ratio {params[-1]['sd_ratio']:.3f} | FEM {args.check_mesh}: Δ/sd "
              f"{params[-1]['check_mean_diff_in_sd']:+.3f}", flush=True)
    res = {"prior": args.prior or "pretrained('matern2d-nonstationary')", "n": args.n, "draws": args.draws,
           "sites": list(args.sites), "check_evaluated": not args.skip_check, "mode_generator": to_values(mode_gen),
           "truth_mesh": args.truth_mesh, "ref_mesh": args.ref_mesh, "check_mesh": args.check_mesh,
           "true": TRUE, "mode": to_values(mode), "laplace_sd": np.sqrt(np.diag(cov)).tolist(),
           "proposal": {"df": df, "scale": scale}, "ess": ess,
           "seconds": {"generator": t_gen, "reference": t_ref, "check": t_chk},
           "seconds_per_draw": {"generator": t_gen / max(1, len(rows['gen'])), "reference": t_ref / len(draws),
                                "check": t_chk / len(draws)},
           "params": [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}
                      for r in params]}
    out = Path(args.out)
    (out / f"nonstationary_posterior{args.tag}.json").write_text(json.dumps(res, indent=1))
    np.savez_compressed(f"/tmp/nonstationary_posterior{args.tag}_draws.npz", draws=draws, log_q=log_q,
                        **{k: np.asarray(v) for k, v in rows.items()})
    write(res, out / f"nonstationary_posterior{args.tag}.md")
    return 0


def write(res: dict, path: Path):
    ok_mean = all(abs(r["mean_diff_in_sd"]) <= 0.2 for r in res["params"])
    ok_sd = all(abs(r["sd_ratio"] - 1) <= 0.2 for r in res["params"])
    lines = [
        "# Non-stationary prior: posterior against the finite-element model",
        "",
        "From `benchmarks/nonstationary_posterior.py` (see its docstring for the set-up). "
        f"n = {res['n']} sites uniform on [{res['sites'][0]:g}, {res['sites'][1]:g}]², data from P1 finite elements on a "
        f"{res['truth_mesh']}-cell mesh: range 0.14 at the "
        "centre doubling along the diagonal (trends ln 2 / 2), ratio 2 at 30°, σ = 1, noise 0.2. The model is "
        "the prior's own box (unit square, Neumann), fit's default priors.",
        "",
        "Both posteriors by self-normalised importance sampling from one proposal, "
        + ("an equal mixture of two multivariate t at the two posteriors' modes" if res.get("mode_generator")
           else "a multivariate t at the reference posterior's mode (an earlier version of this script)")
        + f" ({res['draws']} draws): the generator's collapsed likelihood, and the reference — the FEM GMRF itself "
        f"on a {res['ref_mesh']}-cell mesh (sparse factorisations; its log-likelihood matches the dense FEM "
        + (f"covariance to 1e-12). Its mesh error: the same posterior on a {res['check_mesh']}-cell mesh, last columns. "
           if res.get("check_evaluated", True) else "covariance to 1e-12; its mesh error: see the whole-square run). ") +
        f"Effective sample sizes: generator {res['ess']['gen']:.0f}, reference {res['ess']['ref']:.0f}"
        + (f", check mesh {res['ess']['check']:.0f}" if res.get("check_evaluated", True) else "") + ". Monte Carlo standard errors of the comparisons by bootstrap over "
        "the shared draws.",
        "",
        "| parameter | true | generator | FEM reference | (gen − ref)/sd_ref | sd ratio | FEM check mesh: Δ/sd, sd ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["params"]:
        lines.append(f"| {r['name']} | {r['true']:.3f} | {r['gen_mean']:.4f} ± {r['gen_sd']:.4f} | "
                     f"{r['ref_mean']:.4f} ± {r['ref_sd']:.4f} | {r['mean_diff_in_sd']:+.3f} ± {r['mean_diff_se']:.3f} | "
                     f"{r['sd_ratio']:.3f} ± {r['sd_ratio_se']:.3f} | "
                     + (f"{r['check_mean_diff_in_sd']:+.3f}, {r['check_sd_ratio']:.3f} |"
                        if res.get("check_evaluated", True) else "not evaluated |"))
    s = res["seconds_per_draw"]
    lines += [
        "",
        f"Goal: every mean within 0.2 posterior sd of the reference — **{'met' if ok_mean else 'not met'}**; "
        f"every sd within ±20 % — **{'met' if ok_sd else 'not met'}**.",
        "",
        f"Cost per likelihood evaluation (n = {res['n']}): generator {s['generator']:.2f} s, FEM mesh "
        f"{res['ref_mesh']} {s['reference']:.2f} s (assembly with scikit-fem included)"
        + (f", mesh {res['check_mesh']} {s['check']:.2f} s." if res.get("check_evaluated", True) else "."),
    ]
    if res.get("notes"):
        lines += ["", "## Notes", "", res["notes"]]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
