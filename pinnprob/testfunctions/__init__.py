"""Test functions for the weak form: Laplacian eigenbases and compactly supported bumps."""

from pinnprob.testfunctions.compact import BumpTestFunctions, adjoint_order, apply_adjoint, laplacian
from pinnprob.testfunctions.eigen import BoxEigenbasis, ProductRule, SeparableFeatures, dense_features

__all__ = ["BoxEigenbasis", "BumpTestFunctions", "ProductRule", "SeparableFeatures", "dense_features", "adjoint_order", "apply_adjoint", "laplacian"]
