"""Command line: ``pinnprob demo`` and ``pinnprob train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args) -> int:
    import jax

    import pinnprob
    from pinnprob.plotting import plot_covariance, plot_fields

    prior = pinnprob.pretrained("matern2d") if args.prior is None else pinnprob.load(args.prior)
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
        raise SystemExit("pinnprob train: give a CONFIG json file, or --default to retrain the shipped prior")
    path = DEFAULT_CONFIG_FILE if args.default else Path(args.config)
    try:
        config = PriorConfig.from_json(path)
    except FileNotFoundError:
        raise SystemExit(f"pinnprob train: no such config file: {path}") from None
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise SystemExit(f"pinnprob train: bad config {path}: {e}") from None
    if args.steps is not None:
        config = config.replace(steps=args.steps)
    prior = pinnprob.train(config, checkpoint=args.checkpoint, resume=args.resume, progress=not args.quiet)
    saved = prior.save(args.out)
    print(f"trained in {prior.history.get('train_seconds', float('nan')):.0f} s; saved {saved}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pinnprob", description="Generative PINN priors for spatial random fields.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="draw fields from the shipped default prior and plot them against the truth")
    d.add_argument("--out", default="pinnprob-demo", help="output folder for the figures (default: %(default)s)")
    d.add_argument("--prior", default=None, help="a prior file instead of the shipped default")
    d.add_argument("--samples", type=int, default=4000, help="fields used for the covariance plot")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    t = sub.add_parser("train", help="train a prior from a JSON config (or --default: retrain the shipped one)")
    t.add_argument("config", nargs="?", default=None, help="JSON file with PriorConfig fields")
    t.add_argument("--default", action="store_true", help="retrain the shipped matern2d prior from scratch")
    t.add_argument("--out", default="prior.eqx", help="where to save the trained prior (default: %(default)s)")
    t.add_argument("--checkpoint", default=None, help="checkpoint file, saved during training")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    t.add_argument("--steps", type=int, default=None, help="override the number of steps")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
