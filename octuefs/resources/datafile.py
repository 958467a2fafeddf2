"""Octue's `octue.resources.datafile` names."""

from octuefs.datafile import Datafile

__all__ = ["Datafile"]
