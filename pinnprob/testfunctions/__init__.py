"""Test functions for the weak form: Laplacian eigenbases and compactly supported bumps."""

from pinnprob.testfunctions.compact import BumpTestFunctions, adjoint_order, apply_adjoint, laplacian
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["BoxEigenbasis", "BumpTestFunctions", "adjoint_order", "apply_adjoint", "laplacian"]
