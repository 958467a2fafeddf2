"""Octue's `octue.resources.dataset` names."""

from octuefs.dataset import Dataset

__all__ = ["Dataset"]
