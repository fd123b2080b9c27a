"""Generators u(x; z, θ): Gaussian (linear in z) and push-forward (nonlinear in z)."""

from pinnprob.generators.base import (
    AbstractConvolutionGenerator,
    AbstractDiagonalGenerator,
    AbstractGaussianGenerator,
    AbstractGenerator,
    AbstractPushForwardGenerator,
    FourierFeatures,
)
from pinnprob.generators.convolution import ConvolutionGenerator
from pinnprob.generators.eigendense import EigenDenseGenerator
from pinnprob.generators.lowrank import LowRankGenerator
from pinnprob.generators.pushforward import PushForwardGenerator
from pinnprob.generators.spectral import SpectralGenerator
from pinnprob.generators.tabulated import TabulatedGenerator
from pinnprob.generators.variance_mixture import VarianceMixtureGenerator

__all__ = [
    "AbstractConvolutionGenerator",
    "AbstractDiagonalGenerator",
    "AbstractGaussianGenerator",
    "AbstractGenerator",
    "AbstractPushForwardGenerator",
    "ConvolutionGenerator",
    "EigenDenseGenerator",
    "FourierFeatures",
    "LowRankGenerator",
    "PushForwardGenerator",
    "SpectralGenerator",
    "TabulatedGenerator",
    "VarianceMixtureGenerator",
]
