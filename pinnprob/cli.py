"""Command line: ``pinnprob demo``, ``pinnprob train`` and ``pinnprob fit``.

A user error (a missing file or column, non-numeric values, too few sites, a prior file from
another version, ...) ends the command with one line ``pinnprob: error: <message>`` on stderr and
exit status 2; ``--traceback`` shows the full trace instead.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import sys
import warnings
from pathlib import Path

import numpy as np

__all__ = ["grid_over", "main", "numeric_columns", "read_table"]


class CLIError(Exception):
    """A user error with a message meant to be printed as is."""


def _demo(args) -> int:
    import jax

    from pinnprob.plotting import plot_covariance, plot_fields

    prior = _load_prior(args.prior)
    if prior.config.spde != "matern":
        raise CLIError(f"demo draws Matérn fields (range, nu) and plots them against the exact covariance; "
                       f"this prior is for the {prior.config.spde} SPDE: see the results pages in docs/ for it")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(prior)
    settings = [(0.1, 1.0), (0.2, 1.5), (0.5, 2.0)]
    key = jax.random.key(args.seed)
    f1 = plot_fields(prior, key, settings)
    f1.savefig(out / "fields.png", dpi=110)
    f2 = plot_covariance(prior, jax.random.fold_in(key, 1), settings, num_samples=args.samples)
    f2.savefig(out / "covariance.png", dpi=110)
    print(f"wrote {out / 'fields.png'} and {out / 'covariance.png'}")
    return 0


def _train(args) -> int:
    import pinnprob
    from pinnprob.api import DEFAULT_CONFIG_FILE
    from pinnprob.config import PriorConfig

    if args.default == (args.config is not None):
        raise CLIError("train: give a CONFIG json file, or --default to retrain the shipped prior")
    path = DEFAULT_CONFIG_FILE if args.default else Path(args.config)
    try:
        config = PriorConfig.from_json(path)
    except FileNotFoundError:
        raise CLIError(f"train: no such config file: {path}") from None
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise CLIError(f"train: bad config {path}: {e}") from None
    if args.steps is not None:
        config = config.replace(steps=args.steps)
    prior = pinnprob.train(config, checkpoint=args.checkpoint, resume=args.resume, progress=not args.quiet)
    saved = prior.save(args.out)
    print(f"trained in {prior.history.get('train_seconds', float('nan')):.0f} s; saved {saved}")
    return 0


# ---------------------------------------------------------------------------------------------
# pinnprob fit: reading and checking the table (pure functions), then the run (the shell)

def read_table(path, sep: str = ","):
    """The CSV file at ``path`` as a pandas DataFrame; an unreadable file raises :class:`CLIError`."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise CLIError(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise CLIError(f"{str(path)!r} is not a file")
    try:
        df = pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise CLIError(f"could not read {str(path)!r} as a CSV table ({type(e).__name__}: {msg})") from None
    except OSError as e:
        raise CLIError(f"could not read {str(path)!r}: {e.strerror or e}") from None
    if df.shape[1] == 1 and sep == ",":
        head = str(df.columns[0])
        for other, name in ((";", "';'"), ("\t", "tabs")):
            if other in head:
                raise CLIError(f"{str(path)!r} has a single column {head!r}: is it separated by {name}? "
                               f"use --sep '{other}'")
    return df


def _missing_column(name, columns, path, what):
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    cols = ", ".join(repr(str(c)) for c in columns)
    return CLIError(f"{what} column {name!r} is not in {str(path)!r}{hint} (its columns: {cols})")


def numeric_columns(df, columns: dict, path, *, allow_missing=()):
    """Columns of ``df`` as float64 arrays, ``{role: array (n,)}`` for ``columns = {role: name}``.

    Raises :class:`CLIError` naming the column (and the closest existing name) when one is absent,
    and the column, data row and value when an entry is not a number. Empty cells are an error
    unless the role is in ``allow_missing``. ``df`` is not modified."""
    import pandas as pd

    out = {}
    for role, name in columns.items():
        if name not in df.columns:
            raise _missing_column(name, df.columns, path, role if role in ("x", "y", "time", "value") else "covariate")
        raw = df[name]
        vals = pd.to_numeric(raw, errors="coerce")
        bad = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CLIError(f"column {name!r} has a non-numeric value {str(raw.iloc[i])!r} in data row {i + 1} "
                           f"(line {i + 2} of {str(path)!r})" + (f" and {int(bad.sum()) - 1} more" if bad.sum() > 1
                                                                  else ""))
        arr = vals.to_numpy(dtype=np.float64, copy=True)
        miss = np.flatnonzero(~np.isfinite(arr))
        if miss.size and role not in allow_missing:
            rows = ", ".join(str(r + 1) for r in miss[:5]) + (", ..." if miss.size > 5 else "")
            kind = "NaN coordinates" if role in ("x", "y") else "NaN times" if role == "time" else "missing or infinite values"
            raise CLIError(f"column {name!r} has {miss.size} {kind} (data row(s) {rows}); "
                           f"drop or fill those rows first")
        out[role] = arr
    return out


def _read_sites(path, args, *, with_value: bool, sep: str):
    df = read_table(path, sep)
    cols = {"x": args.x, "y": args.y}
    if with_value:
        cols["value"] = args.value
    for c in args.covariate:
        cols[c] = c
    arrs = numeric_columns(df, cols, path)
    X = np.stack([arrs["x"], arrs["y"]], 1)
    Z = np.stack([arrs[c] for c in args.covariate], 1) if args.covariate else None
    return X, arrs.get("value"), Z


def grid_over(X, n: int):
    """An n × n grid over the bounding box of sites X (k, 2): sites (n², 2), x varying slowest
    (``np.meshgrid(gx, gy, indexing="ij")`` order), and the grid shape (n, n)."""
    lo, hi = X.min(0), X.max(0)
    gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    G = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    return G, (n, n)


def _check_fit_args(args):
    names = [c for c in (args.x, args.y, args.time, args.value, *args.covariate) if c is not None]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise CLIError(f"column(s) {', '.join(map(repr, dup))} given for more than one role "
                       "(--x, --y, --time, --value, --covariate must be distinct)")
    for flag, v, lo in (("--warmup", args.warmup, 0), ("--samples", args.samples, 1), ("--chains", args.chains, 1),
                        ("--grid", args.grid, 2), ("--svi-steps", args.svi_steps, 1)):
        if v < lo:
            raise CLIError(f"{flag} must be at least {lo}, got {v}")
    if args.nu is not None and not math.isfinite(args.nu):
        raise CLIError(f"--nu must be a finite number, got {args.nu}")
    if not (0 <= args.buffer <= 5):
        raise CLIError(f"--buffer must be in [0, 5], got {args.buffer}")
    if args.likelihood != "gaussian" and args.log:
        raise CLIError(f"--log is for a Gaussian likelihood; --likelihood {args.likelihood} already models "
                       f"{'log rates' if args.likelihood == 'poisson' else 'log odds'}")
    if args.integration is not None and args.method != "laplace":
        raise CLIError("--integration is for --method laplace")
    if args.warm_start is not None and (args.method != "nuts" or args.time is not None):
        raise CLIError("--warm-start / --no-warm-start is for spatial data with --method nuts")


def _modelled_scale(args):
    """(label of what the field models, prefix and map of the data-scale quantile columns or None),
    from --likelihood and --log: a monotone map keeps quantiles (it would not keep means)."""
    if args.likelihood == "poisson":
        return f"log rate of {args.value}", ("rate_q", np.exp)
    if args.likelihood == "bernoulli":
        return f"logit of {args.value}", ("prob_q", lambda q: 1.0 / (1.0 + np.exp(-q)))
    return (f"log {args.value}", ("exp_q", np.exp)) if args.log else (args.value, None)


def _modelled_box(args, X, rectangle):
    """--bounds as ((xmin, xmax), (ymin, ymax)) or None, and the coordinate map the fit will use
    (:meth:`~pinnprob.inference.data.CoordinateMap.for_fit`), --bounds checked against the sites X."""
    from pinnprob.inference.data import CoordinateMap

    bounds = None if args.bounds is None else np.asarray(args.bounds, np.float64).reshape(2, 2)
    try:
        return bounds, CoordinateMap.for_fit(X, args.buffer, bounds, rectangle)
    except ValueError as e:  # only --bounds can be wrong here
        raise CLIError(f"--bounds: {e}") from None


def _check_inside(Xp, cmap, args, path):
    """Prediction sites must lie in the box the fit models (``cmap``: --bounds, or the data's box with
    --buffer; for priors that move to any box that box, else the square around it)."""
    out = np.flatnonzero(cmap.outside(cmap.to_unit(Xp)))
    if out.size:
        given = args.bounds is not None
        raise CLIError(f"{out.size} site(s) of {str(path)!r} (first: data row {out[0] + 1}) lie outside the "
                       f"modelled {'square' if cmap.lengths is None else 'box'} "
                       f"({'--bounds' if given else f'the data extent plus --buffer {args.buffer:g} on each side'}); "
                       f"{'widen --bounds' if given else 'raise --buffer'} to predict there")


def _load_prior(name):
    import pinnprob
    from pinnprob.api import PRETRAINED

    if name is None or name in PRETRAINED:
        return pinnprob.pretrained(name or "matern2d")
    return pinnprob.load(name)


def _write_posterior(idata, summary, out: Path) -> None:
    """trace.png, pair.png and posterior.nc in ``out``, and the summary printed: the end of every fit."""
    import pandas as pd

    from pinnprob.plotting import plot_pair, plot_trace

    arviz_log = logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # one chain: "shape validation failed" is expected, not news
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_trace(idata).savefig(out / "trace.png", dpi=90)
        plot_pair(idata).savefig(out / "pair.png", dpi=90)
    arviz_log.setLevel(level)
    idata.to_netcdf(str(out / "posterior.nc"))
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(summary)


def _fit(args) -> int:
    import pandas as pd

    import pinnprob
    from pinnprob.plotting import plot_prediction_map

    _check_fit_args(args)
    prior = _load_prior(args.prior)
    if prior.data_kind == "space-time" or args.time is not None:
        if args.likelihood != "gaussian":
            raise CLIError(f"--likelihood {args.likelihood}: space-time fits take a Gaussian likelihood")
        return _fit_spacetime(args, prior)
    if args.y is None:
        raise CLIError("--y is required for a spatial prior (the column of the second coordinate)")
    X, y, Z = _read_sites(args.data, args, with_value=True, sep=args.sep)
    if X.shape[0] < 3:
        raise CLIError(f"{str(args.data)!r} has {X.shape[0]} site(s); a spatial fit needs at least 3")
    if args.log:
        bad = np.flatnonzero(y <= 0)
        if bad.size:
            raise CLIError(f"--log needs positive values, but column {args.value!r} has {bad.size} value(s) <= 0 "
                           f"(first: {y[bad[0]]:g} in data row {bad[0] + 1})")
        y = np.log(y)
    bounds, cmap = _modelled_box(args, X, prior.any_box)
    Xp = Zp = None
    if args.predict_csv is not None:
        Xp, _, Zp = _read_sites(args.predict_csv, args, with_value=False, sep=args.sep)
        _check_inside(Xp, cmap, args, args.predict_csv)
    if args.nu is not None and "nu" not in prior.param_names:
        raise CLIError(f"--nu: the prior {args.prior!r} has no parameter nu (its parameters: {list(prior.param_names)})")

    if not args.quiet:
        field = ("Matérn field (nu " + ("free" if args.nu is None else f"= {args.nu:g}") + ")"
                 if prior.config.spde == "matern" else f"{prior.config.spde} field ({', '.join(prior.param_names)})")
        print(f"fitting {X.shape[0]} sites: {_modelled_scale(args)[0]} ~ intercept"
              f"{''.join(' + ' + c for c in args.covariate)} + {field}, method {args.method}")
    idata = pinnprob.fit(X, y, prior=prior, covariates=Z, likelihood=args.likelihood, nu=args.nu, method=args.method,
                         num_warmup=args.warmup, num_samples=args.samples, num_chains=args.chains, seed=args.seed,
                         buffer=args.buffer, bounds=bounds, svi_steps=args.svi_steps, progress_bar=not args.quiet,
                         covariate_names=list(args.covariate) if Z is not None else None,
                         integration=args.integration, warm_start=args.warm_start)

    # predictions: on a grid without covariates; at the data (and --predict-csv) sites with them
    if Z is None:
        sites, shape = grid_over(X if bounds is None else bounds.T, args.grid)
        kinds = ["grid"] * len(sites)
    else:
        sites, shape, kinds = X, None, ["data"] * len(X)
    cov = Z
    if Xp is not None:
        sites, kinds = np.concatenate([sites, Xp]), kinds + ["new"] * len(Xp)
        cov = None if Z is None else np.concatenate([Z, Zp])
    pred = pinnprob.predict(idata, sites, covariates=cov, seed=args.seed)
    table = {args.x: sites[:, 0], args.y: sites[:, 1]}
    if cov is not None:
        table.update({c: cov[:, j] for j, c in enumerate(args.covariate)})
    if Z is not None or Xp is not None:
        table["site"] = kinds
    table.update({"mean": pred["mean"], "sd": pred["sd"]})
    for lev, q in zip(pred["quantile_levels"], pred["quantiles"]):
        table[f"q{round(100 * float(lev)):02d}"] = q
    scale, to_data = _modelled_scale(args)
    if to_data is not None:
        for lev, q in zip(pred["quantile_levels"], pred["quantiles"]):
            table[f"{to_data[0]}{round(100 * float(lev)):02d}"] = to_data[1](np.asarray(q))

    import arviz as az

    from pinnprob.inference.arviz_data import group

    post = group(idata, "posterior")
    names = [v for v in (*prior.param_names, "sigma", "noise", "intercept", "beta") if v in post]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one chain: ArviZ warns that R-hat needs several
        summary = az.summary(idata, var_names=names)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv")
    pd.DataFrame(table).to_csv(out / "predictions.csv", index=False)
    n_map = len(sites) if shape is None else shape[0] * shape[1]  # the grid only, or every site
    for stat, label in (("mean", "posterior mean"), ("sd", "posterior sd")):
        map_sites, v = sites[:n_map], pred[stat][:n_map]
        fig = plot_prediction_map(map_sites, v, data_sites=X, grid_shape=shape, title=f"{label} of {scale}",
                                  label=f"{scale} ({stat})", cmap="viridis" if stat == "mean" else "magma",
                                  xlabel=args.x, ylabel=args.y)
        fig.savefig(out / f"map_{stat}.png", dpi=120)
    _write_posterior(idata, summary, out)
    written = "summary.csv, predictions.csv, map_mean.png, map_sd.png, trace.png, pair.png, posterior.nc"
    print(f"wrote {written} to {out}/")
    return 0


def _fit_spacetime(args, prior) -> int:
    """``pinnprob fit`` for a long table of space-time data (one row per site and time) with a space-time
    prior: the posterior summary, predictions on a grid at the last time and one step ahead, figures."""
    import pandas as pd

    import pinnprob
    from pinnprob.plotting import plot_prediction_map

    if prior.data_kind != "space-time":
        raise CLIError(f"--time needs a space-time prior (e.g. --prior advection-diffusion-1d); {args.prior or 'matern2d'}"
                       f" is for {prior.data_kind} data")
    if args.time is None:
        raise CLIError("this prior is for space-time data: give the time column with --time COL")
    if args.bounds is not None:
        raise CLIError("--bounds is for spatial fits; a space-time fit models the square around its sites (--buffer)")
    if (args.y is not None) != (prior.dim == 2):
        raise CLIError(f"the prior is {prior.dim}-D in space: " + ("give --y COL" if prior.dim == 2 else "leave out --y"))
    if args.nu is not None:
        raise CLIError("--nu is for Matérn priors")
    if args.predict_csv is not None:
        raise CLIError("--predict-csv is for spatial fits; for new sites and times of a space-time fit, read "
                       "posterior.nc and call pinnprob.predict(idata, X_new, times=...) from Python")
    df = read_table(args.data, args.sep)
    cols = {"x": args.x, **({"y": args.y} if args.y else {}), "time": args.time, "value": args.value,
            **{c: c for c in args.covariate}}
    arrs = numeric_columns(df, cols, args.data)
    X = np.stack([arrs["x"]] + ([arrs["y"]] if args.y else []), 1)
    T, y = arrs["time"], arrs["value"]
    Z = np.stack([arrs[c] for c in args.covariate], 1) if args.covariate else None
    if args.log:
        bad = np.flatnonzero(y <= 0)
        if bad.size:
            raise CLIError(f"--log needs positive values, but column {args.value!r} has {bad.size} value(s) <= 0 "
                           f"(first: {y[bad[0]]:g} in data row {bad[0] + 1})")
        y = np.log(y)
    if Z is not None:
        raise CLIError("covariates with a space-time prior need their values at the prediction site-times; "
                       "use pinnprob.fit and pinnprob.predict from Python for that")
    if not args.quiet:
        print(f"fitting {X.shape[0]} site-times ({len(np.unique(X, axis=0))} sites, {len(np.unique(T))} times): "
              f"{'log ' if args.log else ''}{args.value} ~ intercept + {prior.config.spde} field "
              f"({', '.join(prior.param_names)}), method {args.method}")
    idata = pinnprob.fit(X, y, times=T, prior=prior, method=args.method, num_warmup=args.warmup,
                         num_samples=args.samples, num_chains=args.chains, seed=args.seed, buffer=args.buffer,
                         svi_steps=args.svi_steps, progress_bar=not args.quiet, time_scale=args.time_scale,
                         integration=args.integration)
    # predictions on a grid over the sites, at the last time (interpolation) and one step later (forecast)
    step = float(np.median(np.diff(np.unique(T))))
    t_last = float(T.max())
    if prior.dim == 2:
        sites, shape = grid_over(X, args.grid)
    else:
        sites, shape = np.linspace(X.min(), X.max(), args.grid)[:, None], None
    times = np.repeat([t_last, t_last + step], len(sites))
    allsites = np.tile(sites, (2, 1))
    pred = pinnprob.predict(idata, allsites, times=times, seed=args.seed, num_draws=min(200, args.samples * args.chains))
    table = {args.x: allsites[:, 0], **({args.y: allsites[:, 1]} if args.y else {}), args.time: times,
             "kind": np.repeat(["last time", "forecast"], len(sites)), "mean": pred["mean"], "sd": pred["sd"]}
    for lev, q in zip(pred["quantile_levels"], pred["quantiles"]):
        table[f"q{round(100 * float(lev)):02d}"] = q

    import arviz as az

    from pinnprob.inference.arviz_data import group

    post = group(idata, "posterior")
    names = [v for v in (*prior.param_names, "speed", "direction", "sigma", "noise", "intercept") if v in post]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(idata, var_names=names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv")
    pd.DataFrame(table).to_csv(out / "predictions.csv", index=False)
    scale = f"log {args.value}" if args.log else args.value
    import matplotlib.pyplot as plt

    n = len(sites)
    for k, (tt, label) in enumerate(((t_last, "last time"), (t_last + step, "forecast"))):
        m, sd = pred["mean"][k * n:(k + 1) * n], pred["sd"][k * n:(k + 1) * n]
        if prior.dim == 2:
            fig = plot_prediction_map(sites, m, data_sites=np.unique(X, axis=0), grid_shape=shape,
                                      title=f"posterior mean of {scale}, {args.time} = {tt:g} ({label})",
                                      label=scale, xlabel=args.x, ylabel=args.y)
        else:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ax.plot(sites[:, 0], m, color="C0", label="posterior mean")
            ax.fill_between(sites[:, 0], m - 2 * sd, m + 2 * sd, color="C0", alpha=0.25, label="± 2 sd")
            at = T == tt
            ax.plot(X[at, 0], y[at], "k.", label="data") if at.any() else None
            ax.set(xlabel=args.x, ylabel=scale, title=f"{args.time} = {tt:g} ({label})")
            ax.legend(fontsize=8)
            fig.tight_layout()
        fig.savefig(out / f"map_{'last' if k == 0 else 'forecast'}.png", dpi=120)
        plt.close(fig)
    _write_posterior(idata, summary, out)
    print(f"wrote summary.csv, predictions.csv, map_last.png, map_forecast.png, trace.png, pair.png, posterior.nc "
          f"to {out}/")
    return 0


FIT_DESCRIPTION = """\
Fit a geostatistical model to a CSV table and map the posterior predictive.

The model: VALUE (or log VALUE with --log) = intercept + covariates·beta + f(x, y) + noise, with f a
Matérn field given by the generative prior (the shipped default, or --prior FILE), noise Gaussian;
or, with --likelihood poisson (counts) or bernoulli (0/1), VALUE ~ Poisson(exp η) or Bernoulli(logit⁻¹ η)
with η = intercept + covariates·beta + f(x, y): predictions are then of η, with rate_q* or prob_q*
columns on the data's scale.
The posterior of range (in the units of the coordinates), sigma, nu, noise, intercept and beta is
sampled with NUTS (NumPyro; or BlackJAX, or SVI for a quick approximation).

Written to --out:
  summary.csv      posterior summary (ArviZ) of range, sigma, nu, noise, intercept, beta; also printed
  predictions.csv  posterior mean, sd and 5/50/95 % quantiles of the signal intercept + covariates·beta + f
                   (noise-free, on the log scale with --log, plus exp_q* columns) at the prediction sites:
                   without covariates, a --grid × --grid grid over the data's bounding box; with
                   covariates, whose values are only known at the data sites, the data sites (column
                   site = data); --predict-csv FILE adds sites of FILE (same coordinate and covariate
                   columns; site = new)
  map_mean.png, map_sd.png   the predictions as maps, data sites overlaid
  trace.png, pair.png        ArviZ trace and pair plots
  posterior.nc     the full posterior, with the prior it used (ArviZ InferenceData or DataTree, netCDF;
                   read it back with arviz.from_netcdf and pass it to pinnprob.predict)

Space-time data (a long table, one row per site and time; stations may report at different times):
give --time COL and a space-time prior, e.g. --prior advection-diffusion-1d (then no --y). The
posterior of range (coordinate units), time_range (time units), the velocity (coordinate units per
time unit), alpha, sigma, noise and the intercept is sampled; predictions.csv and map_last.png /
map_forecast.png give the field on a grid at the last time and one time step later (a forecast).
--time-scale sets the time units per prior time unit (default: the median time step), which fixes
the span of temporal ranges and speeds the prior covers.

Example:
  pinnprob fit meuse.csv --x x --y y --value zinc --log --covariate dist --out meuse-fit
  pinnprob fit river.csv --x km --time day --value level --prior advection-diffusion-1d
"""


def main(argv=None) -> int:
    """Run the ``pinnprob`` command line with arguments ``argv`` (default: ``sys.argv[1:]``); returns the
    exit status (0, or 2 after printing a one-line error for a user error)."""
    p = argparse.ArgumentParser(prog="pinnprob", description="Generative PINN priors for spatial random fields.")
    p.add_argument("--traceback", action="store_true", help="show the full Python traceback on errors")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="draw fields from the shipped default prior and plot them against the truth",
                       description="Draw fields from the shipped default prior (or --prior) and write fields.png "
                                   "and covariance.png (covariance of generated fields against the Matérn truth).")
    d.add_argument("--out", default="pinnprob-demo", help="output folder for the figures (default: %(default)s)")
    d.add_argument("--prior", default=None, help="a shipped Matérn prior's name or a prior file instead of the default")
    d.add_argument("--samples", type=int, default=4000, help="fields used for the covariance plot")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    t = sub.add_parser("train", help="train a prior from a JSON config (or --default: retrain the shipped one)",
                       description="Train a generative prior from a JSON file of PriorConfig fields, with a "
                                   "progress bar, checkpoints and resume.")
    t.add_argument("config", nargs="?", default=None, help="JSON file with PriorConfig fields")
    t.add_argument("--default", action="store_true", help="retrain the shipped matern2d prior from scratch")
    t.add_argument("--out", default="prior.eqx", help="where to save the trained prior (default: %(default)s)")
    t.add_argument("--checkpoint", default=None, help="checkpoint file, saved during training")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    t.add_argument("--steps", type=int, default=None, help="override the number of steps")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    f = sub.add_parser("fit", help="fit a CSV table of measurements at sites; write a posterior summary and maps",
                       description=FIT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("data", help="CSV file with a header row, one row per site")
    f.add_argument("--x", required=True, metavar="COL", help="column of the first coordinate (e.g. easting)")
    f.add_argument("--y", default=None, metavar="COL", help="column of the second coordinate (e.g. northing); "
                                                              "required unless the prior is 1-D in space")
    f.add_argument("--time", default=None, metavar="COL",
                   help="column of the time, for a space-time prior (one row per site and time)")
    f.add_argument("--time-scale", type=float, default=None, metavar="T",
                   help="time units per prior time unit, space-time priors (default: the median time step)")
    f.add_argument("--value", required=True, metavar="COL", help="column of the measured value")
    f.add_argument("--covariate", action="append", default=[], metavar="COL",
                   help="a covariate column (repeat the flag for several)")
    f.add_argument("--log", action="store_true", help="model log(value); every value must be > 0")
    f.add_argument("--nu", type=float, default=None,
                   help="fix the smoothness nu (e.g. 1.5; within the prior's range, [0.5, 2.5] for the shipped "
                        "one); default: estimate it over that range")
    f.add_argument("--method", choices=("nuts", "blackjax", "svi", "laplace"), default="nuts",
                   help="NUTS in NumPyro (default), NUTS in BlackJAX, SVI (fast, approximate) or laplace "
                        "(INLA-style: mode, Hessian, importance-weighted or axial draws; for --likelihood "
                        "poisson/bernoulli the field is integrated out by Newton's method, an approximation)")
    f.add_argument("--likelihood", choices=("gaussian", "poisson", "bernoulli"), default="gaussian",
                   help="the law of VALUE given the field: Gaussian noise (default), Poisson counts (log link) or "
                        "Bernoulli 0/1 (logit link)")
    f.add_argument("--integration", choices=("importance", "axial"), default=None,
                   help="--method laplace: importance-weighted proposals or split normals along the Hessian's "
                        "axes (default: by their cost)")
    f.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                   help="--method nuts: start the chains at the Laplace approximation (mode, Hessian) with its "
                        "covariance as the mass matrix (default: when one evaluation of the model is dear, "
                        "at many sites)")
    f.add_argument("--warmup", type=int, default=500, help="NUTS warm-up iterations per chain (default: %(default)s)")
    f.add_argument("--samples", type=int, default=500, help="posterior draws per chain (default: %(default)s)")
    f.add_argument("--chains", type=int, default=1, help="chains: one per device when there are as many devices, else one after "
                        "another (default: %(default)s)")
    f.add_argument("--svi-steps", type=int, default=3000, help="optimisation steps for --method svi "
                                                              "(default: %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    f.add_argument("--grid", type=int, default=60, help="prediction grid points per side (default: %(default)s)")
    f.add_argument("--predict-csv", default=None, metavar="FILE",
                   help="also predict at the sites of FILE (same coordinate and covariate column names)")
    f.add_argument("--buffer", type=float, default=0.5,
                   help="modelled box around the data, in units of its longest side, on each side (default: "
                        "%(default)s)")
    f.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="the modelled box itself (spatial fits; instead of --buffer), e.g. the study area; the "
                        "map's grid covers it")
    f.add_argument("--prior", default=None, metavar="NAME|FILE",
                   help="a shipped prior by name (matern2d, matern2d-nonstationary, advection-diffusion-1d, ...) "
                        "or a prior file; default matern2d")
    f.add_argument("--sep", default=",", help="column separator of the CSV files (default: ',')")
    f.add_argument("--out", default="pinnprob-fit", help="output folder (default: %(default)s)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=_fit)
    args = p.parse_args(argv)
    if args.traceback:
        return args.func(args)
    from pinnprob.prior import PriorFileError

    try:
        return args.func(args)
    except (CLIError, PriorFileError, ValueError, FileNotFoundError, OSError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename:
            msg = f"{e.strerror}: {e.filename!r}"
        print(f"pinnprob: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
