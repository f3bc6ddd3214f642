"""Passes: one module per pass; :mod:`olivine.passes.base` holds the contract and the registry."""

from olivine.passes.base import PASSES, Pass, PassConfig, PassContext

__all__ = ["PASSES", "Pass", "PassConfig", "PassContext"]
