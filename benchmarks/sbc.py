"""Simulation-based calibration (Talts et al. 2018) of pinnprob's NumPyro inference.

Run:  python benchmarks/sbc.py                       (100 replicates, collapsed; 25-40 min on a shared 2-core CPU)
      python benchmarks/sbc.py --replicates 5 --out /tmp/sbc.md --figure /tmp/sbc.png   (a smoke run)
      python benchmarks/sbc.py --method latent --replicates 7 --seed K --no-report --json /tmp/lat_K.json
          (K = 100, 101, ...; one process per core), then
      python benchmarks/sbc.py --merge /tmp/lat_*.json --out /tmp/sbc_latent.md --figure /tmp/sbc_latent.png

Model, in the unit square (no coordinate map), ν fixed at 1.5:

    range ~ Uniform(0.2, 0.6),  sigma ~ HalfNormal(1),  noise ~ HalfNormal(0.5)
    f ~ prior.distribution(X_all, range=range, nu=1.5, sigma=sigma)      (40 sites)
    y ~ Normal(f[:30], noise)                                             (30 observed sites)

with prior = pinnprob.pretrained("matern2d").truncate(0.2, nu=1.5) and 30 observed + 10 held-out sites
uniform in [0.25, 0.75]² (fixed seed). For each replicate a draw (θ, f, y) of the prior predictive
(numpyro.infer.Predictive on the model with y unobserved); then NUTS on that y.

``--method latent``: the model wrapped in ``pinnprob.inference.latent_field`` (the field site
becomes ``f_latent ~ N(0, I_m)`` plus a deterministic ``f`` over all 40 sites, so the posterior of the
held-out values comes straight from the chain). ``--method collapsed`` (the default: ≈ 6 leapfrog
steps per iteration against ≈ 30-110 for the latent form, so 100 replicates fit in the CPU budget):
``CollapsedGaussian`` for y at the 30 observed sites (field integrated out), then for each posterior draw
one exact draw of the latent given y (``conditional_latent``, Matheron's rule) and the field at all 40
sites from it.

ONE ``MCMC(NUTS(model), jit_model_args=True)`` object is reused for every replicate (``.run(key_i, y=y_i)``)
so the sampler compiles once; the wall time of each run is recorded to check that.

Output: rank statistics of range, sigma, noise among L thinned posterior draws (L = 99 from 400 after 300
warm-up by default), χ² tests of uniformity over ``--bins`` bins, a figure of the rank histograms, the
coverage of the 90 % central credible intervals of the 10 held-out field values, ESS, divergences and
run times, written to docs/results/sbc.md (and a JSON of all per-replicate numbers, ``--json``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # shared 2-core machine: no BLAS thread contention

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import MCMC, NUTS, Predictive  # noqa: E402
from scipy import stats  # noqa: E402

import pinnprob  # noqa: E402
from pinnprob.inference import latent_field  # noqa: E402
from pinnprob.inference.collapsed import CollapsedGaussian, conditional_latent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ("range", "sigma", "noise")
NU = 1.5
RANGE_LO, RANGE_HI = 0.2, 0.6
SIGMA_SCALE, NOISE_SCALE = 1.0, 0.5


def make_sites(n_obs: int, n_held: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.25, 0.75, size=(n_obs + n_held, 2))
    return X


def make_models(prior, X_all, n_obs):
    X_obs = X_all[:n_obs]

    def model(y=None):
        range_ = numpyro.sample("range", dist.Uniform(RANGE_LO, RANGE_HI))
        sigma = numpyro.sample("sigma", dist.HalfNormal(SIGMA_SCALE))
        noise = numpyro.sample("noise", dist.HalfNormal(NOISE_SCALE))
        f = numpyro.sample("f", prior.distribution(X_all, range=range_, nu=NU, sigma=sigma))
        numpyro.sample("y", dist.Normal(f[:n_obs], noise).to_event(1), obs=y)

    def collapsed_model(y=None):
        range_ = numpyro.sample("range", dist.Uniform(RANGE_LO, RANGE_HI))
        sigma = numpyro.sample("sigma", dist.HalfNormal(SIGMA_SCALE))
        noise = numpyro.sample("noise", dist.HalfNormal(NOISE_SCALE))
        field = prior.distribution(X_obs, range=range_, nu=NU, sigma=sigma)
        numpyro.sample("y", CollapsedGaussian(field, jnp.zeros(n_obs), noise), obs=y)

    feats_all = prior.generator.features(jnp.asarray(X_all))
    feats_obs = feats_all[:n_obs]

    @jax.jit
    def recover(keys, y, r, s, noise):
        """Field at all sites for posterior draws (r, s, noise) of the collapsed model (Matheron's rule)."""
        def one(k, r1, s1, n1):
            fo = pinnprob.inference.GenerativeField(prior.generator, feats_obs, r1, NU, s1)
            z = conditional_latent(k, fo, y, n1)
            return pinnprob.inference.GenerativeField(prior.generator, feats_all, r1, NU, s1).from_latent(z)
        return jax.vmap(one)(keys, r, s, noise)

    return latent_field(model), collapsed_model, recover


def rank_of(truth, draws):
    """Number of draws below the true value: 0..L."""
    return int(np.sum(np.asarray(draws) < truth))


def run(args):
    t_start = time.perf_counter()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    prior_full = pinnprob.pretrained("matern2d")
    prior = prior_full.truncate(RANGE_LO, nu=NU)
    X_all = make_sites(args.n_obs, args.n_held, args.sites_seed)
    n_obs = args.n_obs
    latent_model, collapsed_model, recover = make_models(prior, X_all, n_obs)

    # -- prior predictive: all replicates at once, from the latent model (y unobserved) --------
    key = jax.random.key(args.seed)
    k_data, k_mcmc, k_rec = jax.random.split(key, 3)
    R = args.replicates
    sim = Predictive(latent_model, num_samples=R)(k_data)
    sim = {k: np.asarray(v) for k, v in sim.items()}
    assert sim["f"].shape == (R, args.n_obs + args.n_held) and sim["y"].shape == (R, n_obs)

    infer_model = latent_model if args.method == "latent" else collapsed_model
    mcmc = MCMC(NUTS(infer_model, target_accept_prob=args.target_accept), num_warmup=args.warmup,
                num_samples=args.samples, num_chains=1, jit_model_args=True, progress_bar=False)
    S, L = args.samples, args.L
    thin = np.round(np.linspace(0, S - 1, L)).astype(int)
    assert len(np.unique(thin)) == L

    ranks = {p: [] for p in PARAMS}
    field_ranks, covered, ess, div, steps, times, widths = [], [], {p: [] for p in PARAMS}, [], [], [], []
    sample_times = []
    held = slice(n_obs, None)
    setting = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "latent_dim": prior.latent_dim, "thin": thin.tolist(), "jax": jax.__version__,
               "numpyro": numpyro.__version__, "python": platform.python_version(),
               "float": str(jnp.result_type(float)), "cpu_count": os.cpu_count()}

    def records(n):
        """Per-replicate results of the first n replicates."""
        return {"ranks": {p: ranks[p][:n] for p in PARAMS}, "field_ranks": field_ranks[:n], "covered": covered[:n],
                "widths": widths[:n], "ess": {p: ess[p][:n] for p in PARAMS}, "divergences": div[:n],
                "steps": steps[:n], "times": times[:n], "sample_times": sample_times[:n],
                "is_first": [j == 0 for j in range(n)], "truth": {p: sim[p][:n].tolist() for p in PARAMS},
                "total_s": time.perf_counter() - t_start, "setting": {**setting, "replicates": n}}

    for i in range(R):
        y_i = jnp.asarray(sim["y"][i])
        t0 = time.perf_counter()
        mcmc.run(jax.random.fold_in(k_mcmc, i), y=y_i, extra_fields=("diverging", "num_steps"))
        post = mcmc.get_samples()
        post = {k: np.asarray(jax.block_until_ready(v)) for k, v in post.items() if k in PARAMS or k == "f"}
        extra = mcmc.get_extra_fields()
        sample_times.append(time.perf_counter() - t0)
        if args.method == "collapsed":  # the field for every draw (all S for the intervals, L of them for ranks)
            keys = jax.random.split(jax.random.fold_in(k_rec, i), S)
            f_draws = np.asarray(recover(keys, y_i, post["range"], post["sigma"], post["noise"]))
        else:
            f_draws = post["f"]
        times.append(time.perf_counter() - t0)
        for p in PARAMS:
            ranks[p].append(rank_of(sim[p][i], post[p][thin]))
            ess[p].append(float(effective_sample_size(post[p][None])))
        fh = f_draws[:, held]  # (S, n_held)
        lo, hi = np.quantile(fh, [0.05, 0.95], axis=0)  # interval from all S draws
        truth = sim["f"][i, held]
        covered.append(((truth >= lo) & (truth <= hi)).tolist())
        widths.append(float(np.mean(hi - lo)))
        field_ranks.append([rank_of(truth[j], fh[thin, j]) for j in range(fh.shape[1])])
        div.append(int(np.sum(extra["diverging"])))
        steps.append(float(np.mean(extra["num_steps"])))
        if args.verbose or i < 3 or (i + 1) % 10 == 0:
            print(f"[{i + 1}/{R}] {times[-1]:.2f}s  ranks " + " ".join(f"{p}={ranks[p][-1]}" for p in PARAMS)
                  + f"  ESS(range)={ess['range'][-1]:.0f}  div={div[-1]}  steps={steps[-1]:.1f}"
                  + f"  covered={int(np.sum(covered[-1]))}/{len(covered[-1])}", flush=True)
        if args.no_report:  # runs meant to be merged keep what they have if stopped early
            args.json.write_text(json.dumps(records(i + 1)))

    return records(R)


def merge(parts):
    """Concatenate the per-replicate records of several runs (e.g. different --seed)."""
    out = {"ranks": {p: [] for p in PARAMS}, "ess": {p: [] for p in PARAMS}, "truth": {p: [] for p in PARAMS}}
    for key in ("field_ranks", "covered", "widths", "divergences", "steps", "times", "sample_times", "is_first"):
        out[key] = []
    for r in parts:
        for p in PARAMS:
            out["ranks"][p] += r["ranks"][p]
            out["ess"][p] += r["ess"][p]
            out["truth"][p] += r["truth"][p]
        for key in ("field_ranks", "covered", "widths", "divergences", "steps", "times", "sample_times", "is_first"):
            out[key] += r[key]
    out["total_s"] = sum(r["total_s"] for r in parts)
    out["setting"] = {**parts[0]["setting"], "seeds": [r["setting"]["seed"] for r in parts],
                      "replicates": sum(len(r["times"]) for r in parts),
                      "replicates_per_run": max(r["setting"]["replicates"] for r in parts)}
    return out


def summarise(rec, L, bins):
    edges = np.linspace(0, L + 1, bins + 1)  # ranks 0..L: L + 1 values, (L + 1) / bins per bin
    res = {"p_values": {}, "counts": {}}
    for p in PARAMS:
        counts, _ = np.histogram(rec["ranks"][p], bins=edges)
        res["counts"][p] = counts.tolist()
        res["p_values"][p] = float(stats.chisquare(counts).pvalue)
    fr = np.asarray(rec["field_ranks"]).ravel()
    counts, _ = np.histogram(fr, bins=edges)
    res["counts"]["field_heldout"] = counts.tolist()
    res["p_values"]["field_heldout"] = float(stats.chisquare(counts).pvalue)
    cov = np.asarray(rec["covered"], float)
    N = cov.size
    phat = float(cov.mean())
    per_rep = cov.mean(1)
    times = np.asarray(rec["times"])
    first = np.asarray(rec["is_first"], bool)
    res.update({
        "replicates": len(times),
        "coverage": phat, "coverage_pairs": N, "coverage_se_binomial": float(np.sqrt(phat * (1 - phat) / N)),
        "coverage_se_replicates": float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))) if len(per_rep) > 1 else float("nan"),
        "coverage_target": 0.9 * (rec["setting"]["samples"] - 1) / (rec["setting"]["samples"] + 1),
        "coverage_binom_p": float(stats.binomtest(int(cov.sum()), N, 0.9).pvalue),
        "coverage_binom_p_target": float(stats.binomtest(
            int(cov.sum()), N, 0.9 * (rec["setting"]["samples"] - 1) / (rec["setting"]["samples"] + 1)).pvalue),
        "coverage_by_site": cov.mean(0).tolist(),
        "mean_interval_width": float(np.mean(rec["widths"])),
        "ess": {p: {"median": float(np.median(v)), "min": float(np.min(v)),
                    "frac_below_L": float(np.mean(np.asarray(v) < L))} for p, v in rec["ess"].items()},
        "divergences_total": int(np.sum(rec["divergences"])),
        "replicates_with_divergences": int(np.sum(np.asarray(rec["divergences"]) > 0)),
        "mean_steps": float(np.mean(rec["steps"])), "median_steps": float(np.median(rec["steps"])),
        "first_run_s": float(np.mean(times[first])),
        "median_run_s": float(np.median(times[~first])) if (~first).any() else float("nan"),
        "median_sample_s": float(np.median(np.asarray(rec["sample_times"])[~first])) if (~first).any() else float("nan"),
        "sum_run_s": float(times.sum()),
        "total_s": rec["total_s"], "ranks": rec["ranks"], "setting": rec["setting"],
    })
    return res


def figure(res, L, bins, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(PARAMS) + ["field_heldout"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2))
    R = len(res["ranks"]["range"])
    for ax, p in zip(axes, names):
        counts = np.asarray(res["counts"][p])
        n = counts.sum()
        centers = (np.arange(bins) + 0.5) * (L + 1) / bins
        ax.bar(centers, counts, width=(L + 1) / bins * 0.9, color="tab:blue" if p in PARAMS else "tab:green")
        e = n / bins
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        ax.axhspan(lo, hi, color="grey", alpha=0.25, lw=0)
        ax.axhline(e, color="k", lw=0.8)
        title = p if p in PARAMS else "f at held-out sites (pooled)"
        ax.set_title(f"{title}\nχ² p = {res['p_values'][p]:.3f}", fontsize=10)
        ax.set_xlabel(f"rank among L = {L} draws")
        ax.set_xlim(0, L + 1)
    axes[0].set_ylabel("count")
    fig.suptitle(f"SBC rank histograms, {R} replicates (grey: 99 % band for a uniform bin count)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


NOTES_MARKER = "<!-- hand-written notes below this line are kept when benchmarks/sbc.py rewrites the file -->"


def write_md(res, path, fig_path):
    s = res["setting"]
    R = res["replicates"]
    L, bins = s["L"], s["bins"]
    try:
        fig_rel = os.path.relpath(fig_path, path.parent)
    except ValueError:
        fig_rel = str(fig_path)
    pv = res["p_values"]
    ess = res["ess"]
    method_txt = {
        "latent": "the latent parameterisation `pinnprob.inference.latent_field(model)`: NUTS samples "
                  f"range, sigma, noise and the {s['latent_dim']} latent coefficients `f_latent`; the deterministic "
                  "site `f` (all 40 sites) gives the held-out field values directly",
        "collapsed": "the collapsed likelihood `pinnprob.inference.collapsed.CollapsedGaussian` for y at the "
                     f"{s['n_obs']} observed sites (the field integrated out; NUTS in 3 dimensions); for each of the "
                     f"{s['samples']} posterior draws one exact draw of the {s['latent_dim']} latent coefficients given y and θ "
                     "(`conditional_latent`, Matheron's rule) and from it the field at all sites",
    }[s["method"]]
    seeds = s.get("seeds", [s["seed"]])
    cmd = (f"python benchmarks/sbc.py --replicates {R} --method {s['method']}" if len(seeds) == 1 else
           f"python benchmarks/sbc.py --method {s['method']} --replicates {s['replicates_per_run']} --seed K "
           f"--no-report --json partK.json` for K in {seeds}, then `python benchmarks/sbc.py --merge part*.json")
    nbin = (L + 1) // bins
    nf = sum(res["counts"]["field_heldout"])
    lines = [
        "# Simulation-based calibration of the NumPyro inference",
        "",
        (f"Produced by `{cmd}` ({s.get('cpu_count')} visible CPU cores, shared with other jobs; {s['float']}; "
        f"JAX {s['jax']}, NumPyro {s['numpyro']}). Method of Talts et al. (2018), *Validating Bayesian "
        "inference algorithms with simulation-based calibration*: when every posterior is computed right, the "
        "rank of the true value among L posterior draws is uniform on {0, …, L}, whatever the model."),
        "",
        ("Rerun: `python benchmarks/sbc.py [--replicates N] [--method collapsed|latent]` (writes this file, "
        "the figure and `/tmp/sbc_results.json` with every per-replicate number)."),
        "",
        "## Setting",
        "",
        (f"* Sites: {s['n_obs']} observed + {s['n_held']} held-out, uniform in [0.25, 0.75]² (seed {s['sites_seed']}), "
        "in the unit square (no coordinate map)."),
        f"* Prior: `pinnprob.pretrained(\"matern2d\").truncate({RANGE_LO}, nu={NU})` ({s['latent_dim']} modes), ν = {NU} fixed.",
        f"* range ~ Uniform({RANGE_LO}, {RANGE_HI}), sigma ~ HalfNormal({SIGMA_SCALE:g}), noise ~ HalfNormal({NOISE_SCALE:g});",
        (f"  f ~ `prior.distribution(X_all, range=range, nu={NU}, sigma=sigma)` over the {s['n_obs'] + s['n_held']} sites; "
        f"y = f[:{s['n_obs']}] + noise · ε."),
        (f"* Replicates: {R} draws (range, sigma, noise, f, y) of the prior predictive "
        "(`numpyro.infer.Predictive` on the latent model, y unobserved; seed"
        f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}); for each, NUTS on y."),
        (f"* Inference: {method_txt}. One `MCMC(NUTS(model, target_accept_prob={s['target_accept']}), "
        f"num_warmup={s['warmup']}, num_samples={s['samples']}, jit_model_args=True)` reused for all "
        "replicates (`.run(key_i, y=y_i)`), one chain each."),
        (f"* Ranks: among L = {L} draws thinned evenly from the {s['samples']} (every ≈ {s['samples'] / L:.1f}th); "
        f"χ² test of uniformity (`scipy.stats.chisquare`) over {bins} bins of {nbin} ranks."),
        "",
        "## Rank statistics",
        "",
        f"| quantity | χ² p-value ({bins - 1} dof) | bin counts, low rank → high |",
        "|---|---|---|",
    ]
    for p in PARAMS:
        lines.append(f"| {p} | {pv[p]:.3f} | {' '.join(map(str, res['counts'][p]))} (expected {R / bins:g} each) |")
    lines += [
        (f"| f at the {s['n_held']} held-out sites, pooled ({nf} ranks, not independent within a replicate) | "
        f"{pv['field_heldout']:.3f} | {' '.join(map(str, res['counts']['field_heldout']))} (expected {nf / bins:g} each) |"),
        "",
        f"![SBC rank histograms]({fig_rel})",
        "",
        "## Coverage of the held-out field",
        "",
        (f"90 % central credible intervals (5 % and 95 % quantiles, `np.quantile`, of all {s['samples']} draws) of f "
        f"at the {s['n_held']} held-out sites, against the true f (not a noisy observation). With S exchangeable "
        "draws the interval between the interpolated 5 % and 95 % sample quantiles covers the truth with "
        f"probability ≈ 0.9 (S − 1)/(S + 1) = {0.9 * (s['samples'] - 1) / (s['samples'] + 1):.3f}, the target here "
        "(autocorrelated draws move it slightly)."),
        "",
        (f"* covered: **{res['coverage']:.3f}** of {res['coverage_pairs']} (replicate, site) pairs; "
        f"binomial standard error {res['coverage_se_binomial']:.3f}. The sites of one replicate share θ and the "
        "data, so their hits are correlated; the standard error from the spread of the per-replicate coverage, "
        f"{res['coverage_se_replicates']:.3f}, is the more honest one. Exact binomial test (treating pairs as "
        f"independent) against 0.90: p = {res['coverage_binom_p']:.3f}; against {res['coverage_target']:.3f}: "
        f"p = {res['coverage_binom_p_target']:.3f}."),
        "* by held-out site: " + ", ".join(f"{c:.2f}" for c in res["coverage_by_site"]) + ".",
        f"* mean interval width {res['mean_interval_width']:.3f} (for scale: E σ = 0.80 under HalfNormal(1)).",
        "",
        "## Sampler diagnostics and run time",
        "",
        "| | range | sigma | noise |",
        "|---|---|---|---|",
        f"| median ESS of the {s['samples']} draws (over replicates) | " + " | ".join(f"{ess[p]['median']:.0f}" for p in PARAMS) + " |",
        "| smallest ESS | " + " | ".join(f"{ess[p]['min']:.0f}" for p in PARAMS) + " |",
        f"| replicates with ESS < L = {L} | " + " | ".join(f"{100 * ess[p]['frac_below_L']:.0f} %" for p in PARAMS) + " |",
        "",
        (f"* Divergent transitions: {res['divergences_total']} in total, in {res['replicates_with_divergences']} of "
        f"{R} replicates; leapfrog steps per iteration: mean {res['mean_steps']:.1f}, median over replicates "
        f"{res['median_steps']:.1f}."),
        f"* Run time: first replicate {res['first_run_s']:.1f} s (includes compilation), then median "
        f"{res['median_run_s']:.1f} s per replicate ({res['median_sample_s']:.1f} s of it in `mcmc.run`; "
        f"no recompilation); all replicates {res['sum_run_s'] / 60:.1f} min, whole benchmark "
        + (f"{res['total_s'] / 60:.1f} min (wall clock, shared CPU)." if len(seeds) == 1 else
           f"{res['total_s'] / 60:.1f} min summed over the {len(seeds)} merged runs (they may have run in parallel)."),
        "",
    ]
    text = "\n".join(lines)
    if path.exists() and NOTES_MARKER in path.read_text():
        text += "\n" + path.read_text().split(NOTES_MARKER, 1)[1].lstrip("\n").join([NOTES_MARKER + "\n\n", ""])
    else:
        text += "\n" + NOTES_MARKER + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--method", choices=("latent", "collapsed"), default="collapsed")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--L", type=int, default=99, help="posterior draws kept (thinned evenly) for the ranks")
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--target-accept", type=float, default=0.8)
    ap.add_argument("--n-obs", type=int, default=30)
    ap.add_argument("--n-held", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sites-seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "sbc.md")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "results" / "figures" / "sbc_ranks.png")
    ap.add_argument("--json", type=Path, default=Path("/tmp/sbc_results.json"))
    ap.add_argument("--merge", type=Path, nargs="+", help="summarise the --json files of earlier runs instead of running")
    ap.add_argument("--no-report", action="store_true", help="only write --json (for runs to be merged)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if (args.L + 1) % args.bins:
        ap.error("L + 1 must be a multiple of --bins (equal-width rank bins)")
    if args.merge:
        rec = merge([json.loads(Path(f).read_text()) for f in args.merge])
    else:
        rec = run(args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rec))
        if args.no_report:
            return
    res = summarise(rec, rec["setting"]["L"], rec["setting"]["bins"])
    figure(res, rec["setting"]["L"], rec["setting"]["bins"], args.figure)
    write_md(res, args.out, args.figure)
    print(json.dumps({k: res[k] for k in ("replicates", "p_values", "coverage", "coverage_se_binomial",
                                           "coverage_se_replicates", "first_run_s", "median_run_s", "total_s",
                                           "divergences_total")}, indent=1))
    print("median ESS", {p: res["ess"][p]["median"] for p in PARAMS})


if __name__ == "__main__":
    main()
