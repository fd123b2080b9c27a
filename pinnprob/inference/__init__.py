"""Generative priors inside NumPyro models: distribution, reparameterisation, priors, fitting.

A fit, in the order the data go through it: ``data`` (checks, coordinate map), ``model`` (the NumPyro
model), ``runners`` (NUTS, BlackJAX, SVI), ``recovery`` (a collapsed field drawn back), ``fit`` (the
one call), ``predict`` (at new sites).
"""

from pinnprob.inference.arviz_data import to_arviz
from pinnprob.inference.distribution import GenerativeField, LatentOnlyError
from pinnprob.inference.priors import PCRange, Truncated, pc_priors, pc_sigma, truncate_to_range
from pinnprob.inference.reparam import LatentFieldReparam, latent_field

__all__ = [
    "GenerativeField",
    "LatentFieldReparam",
    "LatentOnlyError",
    "PCRange",
    "Truncated",
    "latent_field",
    "pc_priors",
    "pc_sigma",
    "to_arviz",
    "truncate_to_range",
]
