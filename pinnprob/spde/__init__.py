"""Stochastic PDEs: operators and their parameterisations."""

from pinnprob.spde.base import AbstractSPDE, DiagonalSPDE, LocalCoefficients, LocalSPDE

from pinnprob.spde.matern import (
    MaternSPDE,
    alpha_from_nu,
    from_operator_params,
    kappa_from_range,
    nu_from_alpha,
    range_from_kappa,
    sigma_from_tau,
    tau_from_sigma,
    to_operator_params,
)

__all__ = [
    "AbstractSPDE",
    "DiagonalSPDE",
    "LocalCoefficients",
    "LocalSPDE",
    "MaternSPDE",
    "alpha_from_nu",
    "from_operator_params",
    "kappa_from_range",
    "nu_from_alpha",
    "range_from_kappa",
    "sigma_from_tau",
    "tau_from_sigma",
    "to_operator_params",
]
