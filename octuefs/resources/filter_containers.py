"""Octue's `octue.resources.filter_containers` names: the containers `dataset.files` and `order_by` return."""

from octuefs.filters import FilterDict, FilterList, FilterSet

__all__ = ["FilterDict", "FilterList", "FilterSet"]
