"""Must-show figures of "runs where its users are" (issue 9), on the Python line that runs it.

Run, once per Python line (each in its own venv):
    python benchmarks/portability.py            # writes docs/results/portability/py<X.Y>.json
    python benchmarks/portability.py --render   # docs/results/portability.md from every JSON there
    python benchmarks/portability.py --ci-log ci.log   # record the per-line times of a `bash .ci/run` log
    python benchmarks/portability.py --suite-log t.log # record a by-hand run of the README's test command
                                                       # (a line CI does not run) in this line's JSON

1. float64: with ``jax_enable_x64`` on, load the shipped default, sample, fit a small data set drawn
   from the exact Matérn GP and predict at held-out sites; print dtypes, the posterior against the
   truth and the prediction error.
2. The round trip: train a small non-default prior from scratch, fit with it, ``to_netcdf``, then in a
   new process ``from_netcdf`` and ``predict``: the largest difference of mean and sd (goal ≤ 1e-6).
3. Bad input: each case raises one ValueError before any work, and the user's arrays are unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "results"
ENV = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


def versions() -> dict:
    import arviz
    import jax
    import numpy
    import numpyro

    return {"python": platform.python_version(), "jax": jax.__version__, "numpy": numpy.__version__,
            "numpyro": numpyro.__version__, "arviz": arviz.__version__}


def gp_data(n: int, seed: int, rho: float = 3.0, sigma: float = 1.0, noise: float = 0.2):
    """n sites in [0, 10]², a Matérn-3/2 field (range rho, sd sigma) plus noise, by exact Cholesky."""
    import numpy as np
    from _common import distances

    from pinnprob import truth

    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, (n, 2))
    D = distances(X)
    C = truth.matern_covariance(D, range=rho, sigma=sigma, nu=1.5)
    f = np.linalg.cholesky(C + 1e-9 * np.eye(n)) @ rng.standard_normal(n)
    return X, f + noise * rng.standard_normal(n), f


def float64_check(n_fit: int = 100, n_test: int = 50, draws: int = 200) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import pinnprob
    from pinnprob.inference.arviz_data import group

    t0 = time.perf_counter()
    prior = pinnprob.pretrained("matern2d")
    t_load = time.perf_counter() - t0
    dtypes = sorted({str(x.dtype) for x in jax.tree_util.tree_leaves(prior.generator) if hasattr(x, "dtype")})
    S = np.random.default_rng(0).uniform(0, 1, (400, 2))
    fields = prior.sample(jax.random.key(0), S, range=0.2, nu=1.5, sigma=1.0, num_samples=2000)
    fields = jax.block_until_ready(fields)
    var = np.asarray(fields).var(0)
    X, y, f = gp_data(n_fit + n_test, seed=1)
    t0 = time.perf_counter()
    idata = pinnprob.fit(X[:n_fit], y[:n_fit], nu=1.5, num_warmup=draws, num_samples=draws, seed=0, progress_bar=False)
    t_fit = time.perf_counter() - t0
    post = group(idata, "posterior")
    pred = pinnprob.predict(idata, X[n_fit:])
    rmse = float(np.sqrt(np.mean((pred["mean"] - f[n_fit:]) ** 2)))
    z = (f[n_fit:] - pred["mean"]) / pred["sd"]
    return {
        "x64": bool(jax.config.jax_enable_x64), "prior_dtypes": dtypes, "load_seconds": t_load,
        "sample_dtype": str(fields.dtype), "sample_shape": list(fields.shape),
        "sample_variance_mean": float(var.mean()),
        "fit_seconds": t_fit, "posterior_dtype": str(post["range"].dtype),
        "posterior": {k: [float(post[k].mean()), float(post[k].std())] for k in ("range", "sigma", "noise")},
        "truth": {"range": 3.0, "sigma": 1.0, "noise": 0.2},
        "predict_dtype": str(pred["mean"].dtype), "predict_rmse": rmse, "field_sd": float(f[n_fit:].std()),
        "coverage_90": float(np.mean(np.abs(z) <= 1.6449)), "n_fit": n_fit, "n_test": n_test, "draws": draws,
        "modes": int(json.loads(idata.attrs["pinnprob"])["prior_config"]["max_modes"] or 0),
        "collapsed": bool(json.loads(idata.attrs["pinnprob"])["collapsed"]),
    }


def round_trip(steps: int = 600) -> dict:
    """Train a non-default prior, fit, save, and predict again from the file in a new process."""
    script = textwrap.dedent("""
        import json, sys, time
        import numpy as np, pinnprob
        sys.path.insert(0, {here!r})
        from portability import gp_data
        t0 = time.perf_counter()
        prior = pinnprob.train(family="spectral", divergence="kl", modes_per_dim=48, modes_per_step=256,
                               train_range=((0.1, 1.0), (1.0, 2.5)), steps={steps}, seed=3, progress=False,
                               evaluate=False)
        t_train = time.perf_counter() - t0
        X, y, f = gp_data(120, seed=5)
        idata = pinnprob.fit(X, y, prior=prior, num_warmup=200, num_samples=200, seed=1, progress_bar=False)
        Xn = np.random.default_rng(9).uniform(1, 9, (200, 2))
        p = pinnprob.predict(idata, Xn)
        idata.to_netcdf({nc!r})
        np.save({xn!r}, Xn)
        np.save({before!r}, np.stack([p["mean"], p["sd"]]))
        default = pinnprob.pretrained("matern2d")
        print(json.dumps({{"train_seconds": t_train, "latent_dim": prior.latent_dim,
                          "fingerprint": prior.fingerprint[:16], "default_fingerprint": default.fingerprint[:16],
                          "attr_bytes": len(idata.attrs["pinnprob_prior"]), "kind": type(idata).__name__}}))
    """)
    read = textwrap.dedent("""
        import arviz, numpy as np, pinnprob
        idata = arviz.from_netcdf({nc!r})
        p = pinnprob.predict(idata, np.load({xn!r}))
        np.save({after!r}, np.stack([p["mean"], p["sd"]]))
    """)
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: str(Path(tmp) / f"{k}{ext}") for k, ext in
                 (("nc", ".nc"), ("xn", ".npy"), ("before", ".npy"), ("after", ".npy"))}
        here = str(Path(__file__).resolve().parent)
        out = subprocess.run([sys.executable, "-c", script.format(here=here, steps=steps, **paths)], env=ENV,
                             check=True, capture_output=True, text=True)
        info = json.loads(out.stdout.strip().splitlines()[-1])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", read.format(**paths)], env=ENV, check=True)
        info["new_process_seconds"] = time.perf_counter() - t0
        before, after = np.load(paths["before"]), np.load(paths["after"])
        info["file_bytes"] = Path(paths["nc"]).stat().st_size
    info["max_abs_diff_mean"] = float(np.max(np.abs(after[0] - before[0])))
    info["max_abs_diff_sd"] = float(np.max(np.abs(after[1] - before[1])))
    info["sd_range"] = [float(before[1].min()), float(before[1].max())]
    return info


def bad_input() -> list[dict]:
    import jax
    import numpy as np

    import pinnprob

    prior = pinnprob.pretrained("matern2d")
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (30, 2))
    y = rng.standard_normal(30)
    S = rng.uniform(0, 1, (10, 2))
    yn = y.copy()
    yn[3] = np.nan
    cases = [
        ("fit: NaN in y", lambda: pinnprob.fit(X, yn, progress_bar=False)),
        ("fit: y of the wrong length", lambda: pinnprob.fit(X, y[:-1], progress_bar=False)),
        ("fit: sites with no spread", lambda: pinnprob.fit(np.ones_like(X), y, progress_bar=False)),
        ("fit: nu outside the prior's range", lambda: pinnprob.fit(X, y, nu=0.3, progress_bar=False)),
        ("fit: unknown likelihood", lambda: pinnprob.fit(X, y, likelihood="gamma", progress_bar=False)),
        ("sample: site outside the unit square", lambda: prior.sample(jax.random.key(0), S + 1, range=0.2, nu=1.5)),
        ("sample: range outside the prior's range", lambda: prior.sample(jax.random.key(0), S, range=5.0, nu=1.5)),
        ("sample: sigma <= 0", lambda: prior.sample(jax.random.key(0), S, range=0.2, nu=1.5, sigma=-1.0)),
        ("distribution: NaN site", lambda: prior.distribution(np.where(S == S[0, 0], np.nan, S), range=0.2, nu=1.5)),
    ]
    rows = []
    copies = [a.copy() for a in (X, y, yn, S)]
    for name, call in cases:
        t0 = time.perf_counter()
        try:
            call()
            rows.append({"case": name, "error": None, "message": "no error"})
        except ValueError as e:
            rows.append({"case": name, "error": type(e).__name__, "message": str(e).splitlines()[0][:140],
                         "seconds": time.perf_counter() - t0})
    untouched = all(np.array_equal(a, b, equal_nan=True) for a, b in zip((X, y, yn, S), copies))
    for r in rows:
        r["data_untouched"] = untouched
    return rows


def pytest_tallies(text: str) -> list[dict]:
    """Every pytest summary in a log ("3 failed, 437 passed, 2 skipped in 605.1s"), in order."""
    import re

    return [{"result": r, "seconds": float(t)}
            for r, t in re.findall(r"^=*\s*([^\n]*\bpassed\b[^\n]*?) in ([\d.]+)s", text, re.M)]


def read_ci_log(path: Path) -> dict:
    """The summary lines of a `bash .ci/run` log ("Python X.Y.Z: exit N in S s") and its pytest tallies."""
    import re

    text = path.read_text(errors="replace")
    lines = re.findall(r"^Python (\S+): exit (\d+) in (\d+) s$", text, re.M)
    return {"lines": [{"python": v, "exit": int(e), "seconds": int(t)} for v, e, t in lines],
            "pytest": pytest_tallies(text)}


def read_suite_log(path: Path) -> dict:
    """The last pytest tally of a by-hand run of the README's test command; exits if there is none."""
    tallies = pytest_tallies(path.read_text(errors="replace"))
    if not tallies:
        raise SystemExit(f"{path}: no pytest tally ('N passed ... in S s') found")
    return tallies[-1]


def render(out_dir: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted((out_dir / "portability").glob("py*.json"))]
    lines = ["# Portability: Python lines, ArviZ lines, float64, fits read back from disk", "",
             "Written by `python benchmarks/portability.py --render` from the JSON files in "
             "`docs/results/portability/` (one per Python line, each made by `python benchmarks/portability.py` "
             "in that line's venv). 2-core CPU, JAX on the CPU.", ""]
    lines += ["| | " + " | ".join(f"Python {r['versions']['python']}" for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for k in ("jax", "numpy", "numpyro", "arviz"):
        lines.append(f"| {k} | " + " | ".join(r["versions"][k] for r in runs) + " |")
    lines.append("| `fit` returns | " + " | ".join(r["round_trip"]["kind"] for r in runs) + " |")
    ci_path = out_dir / "portability" / "ci.json"
    if ci_path.is_file():
        ci = json.loads(ci_path.read_text())
        lines += ["", "## CI: `bash .ci/run` on a fresh clone", "",
                  "Each line in a fresh venv: create, install `.[test]` from PyPI, run `pytest -n 2 tests` "
                  "(the README's test command on 2 cores).", "",
                  "| Python | exit status | install + tests | pytest |", "|---|---|---|---|"]
        for row, t in zip(ci["lines"], ci["pytest"] + [None] * len(ci["lines"])):
            lines.append(f"| {row['python']} | {row['exit']} | {row['seconds']} s | "
                         + ("" if t is None else f"{t['result']} in {t['seconds']:.0f} s") + " |")
        lines.append(f"| all | | {sum(r['seconds'] for r in ci['lines'])} s | |")
    by_hand = [r for r in runs if "suite" in r]
    if by_hand:
        lines += ["", "Lines CI does not run, by hand: the README's test command (`pytest -n 2 tests`, 2 cores) in a "
                  "fresh venv with `.[test]` installed from PyPI.", "", "| Python | pytest |", "|---|---|"]
        lines += [f"| {r['versions']['python']} | {r['suite']['result']} in {r['suite']['seconds']:.0f} s |"
                  for r in by_hand]
    f0 = runs[0]["float64"]
    lines += ["", "## float64 (`jax_enable_x64` on): load the default, sample, fit, predict", "",
              f"n = {f0['n_fit']} sites in [0, 10]² from an exact Matérn-3/2 GP (range 3, σ 1, noise 0.2), ν fixed at "
              f"1.5, `fit`'s default priors, NUTS {f0['draws']} + {f0['draws']}, one chain; predictions at "
              f"{f0['n_test']} held-out sites against the noise-free field.", "",
              "| | " + " | ".join(f"Python {r['versions']['python']}" for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    f = [r["float64"] for r in runs]
    rows = [
        ("prior arrays", [", ".join(x["prior_dtypes"]) for x in f]),
        ("2 000 fields at 400 sites", [f"{x['sample_dtype']}, mean variance {x['sample_variance_mean']:.3f} "
                                       "(σ² = 1; more near the edges)" for x in f]),
        ("posterior range (truth 3)", [f"{x['posterior']['range'][0]:.2f} ± {x['posterior']['range'][1]:.2f}" for x in f]),
        ("posterior σ (truth 1)", [f"{x['posterior']['sigma'][0]:.2f} ± {x['posterior']['sigma'][1]:.2f}" for x in f]),
        ("posterior noise (truth 0.2)", [f"{x['posterior']['noise'][0]:.3f} ± {x['posterior']['noise'][1]:.3f}" for x in f]),
        ("posterior / prediction dtype", [f"{x['posterior_dtype']} / {x['predict_dtype']}" for x in f]),
        ("held-out RMSE (field sd)", [f"{x['predict_rmse']:.3f} ({x['field_sd']:.3f})" for x in f]),
        ("held-out 90 % coverage", [f"{x['coverage_90']:.2f}" for x in f]),
        ("fit (modes kept, path)", [f"{x['fit_seconds']:.0f} s ({x['modes']} modes, "
                                    f"{'collapsed' if x['collapsed'] else 'latent'})" for x in f]),
    ]
    lines += [f"| {a} | " + " | ".join(b) + " |" for a, b in rows]
    lines += ["", "One data set, one chain: the posterior is within 2 sd of the truth for every parameter; the 50 "
              "held-out sites are correlated, so their coverage is one realisation with a standard error of at "
              "least 0.04 (calibration over many data sets: [sbc.md](sbc.md)). The lines agree in float64 "
              "to the sampling noise of one chain; lines on the same JAX version give the same draws.",
              "", "## A fit read back from disk, in a new process", "",
              "A non-default prior trained from scratch (48 modes per axis, 600 steps) → `fit` (n = 120) → "
              "`predict` at 200 sites → `to_netcdf` → a new Python process: `arviz.from_netcdf` → `predict` "
              "(no prior passed: the fit's stored copy is used). Goal: the same mean and sd to 1e-6.", "",
              "| | " + " | ".join(f"Python {r['versions']['python']}" for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    t = [r["round_trip"] for r in runs]
    rows = [
        ("training the prior", [f"{x['train_seconds']:.0f} s ({x['latent_dim']} modes)" for x in t]),
        ("fingerprint (default's)", [f"`{x['fingerprint']}` (`{x['default_fingerprint']}`)" for x in t]),
        ("stored prior in the attributes", [f"{x['attr_bytes'] / 1024:.0f} kB (file {x['file_bytes'] / 1024:.0f} kB)" for x in t]),
        ("max \\|Δ mean\\|", [f"{x['max_abs_diff_mean']:.1e}" for x in t]),
        ("max \\|Δ sd\\| (sd from " + f"{t[0]['sd_range'][0]:.2f} to {t[0]['sd_range'][1]:.2f})",
         [f"{x['max_abs_diff_sd']:.1e}" for x in t]),
        ("new process (import, read, predict)", [f"{x['new_process_seconds']:.1f} s" for x in t]),
    ]
    lines += [f"| {a} | " + " | ".join(b) + " |" for a, b in rows]
    lines += ["", "The read-back prediction is bitwise equal. The trained prior's fingerprint differs between the "
              "lines where training ran under different JAX versions; the default's is the same on all. A "
              "wrong prior passed to `predict`, or a fit whose stored prior was stripped, raises `ValueError` "
              "(tests/test_fit_roundtrip.py).", "", "## Bad input", "", "Each case must raise one `ValueError` before any work, leaving the arrays as "
              "they were.", "", "| case | " + " | ".join(f"Python {r['versions']['python']}" for r in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for i, case in enumerate(runs[0]["bad_input"]):
        cells = []
        for r in runs:
            b = r["bad_input"][i]
            ok = b["error"] == "ValueError" and b["data_untouched"]
            cells.append(("ValueError" if ok else f"**{b['error']}**") + f" in {1000 * b.get('seconds', 0):.0f} ms")
        lines.append(f"| {case['case']}: “{case['message']}” | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="only rewrite docs/results/portability.md")
    ap.add_argument("--steps", type=int, default=600, help="training steps of the non-default prior")
    ap.add_argument("--ci-log", type=Path, default=None, help="a saved `bash .ci/run` output to record")
    ap.add_argument("--suite-log", type=Path, default=None,
                    help="a saved pytest output of the README's test command, run by hand on this Python line")
    args = ap.parse_args()
    if args.suite_log is not None:
        path = OUT / "portability" / f"py{sys.version_info[0]}.{sys.version_info[1]}.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run this script on this Python line first")
        res = json.loads(path.read_text())
        res["suite"] = read_suite_log(args.suite_log)
        path.write_text(json.dumps(res, indent=1))
        print(f"wrote {path}")
    elif args.ci_log is not None:
        path = OUT / "portability" / "ci.json"
        path.write_text(json.dumps(read_ci_log(args.ci_log), indent=1))
        print(f"wrote {path}")
    elif not args.render:
        res = {"versions": versions()}
        res["round_trip"] = round_trip(args.steps)  # in its own processes, float32
        print(json.dumps(res["round_trip"], indent=1))
        res["bad_input"] = bad_input()
        for r in res["bad_input"]:
            print(f"{r['case']}: {r['error']}: {r['message']}")
        res["float64"] = float64_check()  # turns x64 on for this process: last
        print(json.dumps(res["float64"], indent=1))
        path = OUT / "portability" / f"py{sys.version_info[0]}.{sys.version_info[1]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
        print(f"wrote {path}")
    md = render(OUT)
    (OUT / "portability.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
