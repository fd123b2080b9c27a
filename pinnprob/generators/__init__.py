"""Generators u(x; z, θ): Gaussian (linear in z) and push-forward (nonlinear in z)."""

from pinnprob.generators.base import FourierFeatures, Generator
from pinnprob.generators.lowrank import LowRankGenerator
from pinnprob.generators.pushforward import PushForwardGenerator
from pinnprob.generators.spectral import SpectralGenerator
from pinnprob.generators.tabulated import TabulatedGenerator

__all__ = ["FourierFeatures", "Generator", "LowRankGenerator", "PushForwardGenerator", "SpectralGenerator", "TabulatedGenerator"]
