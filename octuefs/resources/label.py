"""Octue's `octue.resources.label` names."""

from octuefs.metadata.labels import LABEL_PATTERN, Label, LabelSet

__all__ = ["LABEL_PATTERN", "Label", "LabelSet"]
