"""pinnprob: generative physics-informed neural networks as priors for spatial random fields.

>>> import jax, pinnprob
>>> prior = pinnprob.pretrained("matern2d")
>>> fields = prior.sample(jax.random.key(0), X, range=0.2, nu=1.5, sigma=1.0, num_samples=10)
"""

__version__ = "0.1.0"

from pinnprob._imports import load_lazy_proxies  # noqa: E402  (before any jax / numpyro submodule import)

load_lazy_proxies()

from pinnprob.api import pretrained, train  # noqa: E402
from pinnprob.config import PriorConfig  # noqa: E402
from pinnprob.domain import Box  # noqa: E402
from pinnprob.inference.fit import fit  # noqa: E402
from pinnprob.inference.predict import predict  # noqa: E402
from pinnprob.parameters import Axis, ParameterSpace, ParamRange  # noqa: E402
from pinnprob.prior import GenerativePrior, PriorFileError, load  # noqa: E402
from pinnprob.spacetime_prior import SpaceTimePrior  # noqa: E402
from pinnprob.training import TrainingDivergedError  # noqa: E402

__all__ = [
    "Axis",
    "Box",
    "GenerativePrior",
    "ParamRange",
    "ParameterSpace",
    "PriorConfig",
    "PriorFileError",
    "SpaceTimePrior",
    "TrainingDivergedError",
    "fit",
    "load",
    "predict",
    "pretrained",
    "train",
]
