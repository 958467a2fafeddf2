"""Octue's `octue.resources.tag` names (Octue calls the key pattern `TAG_NAME_PATTERN`), and octuefs's `Tag`."""

from octuefs.metadata.tags import TAG_KEY_PATTERN as TAG_NAME_PATTERN
from octuefs.metadata.tags import Tag, TagDict

__all__ = ["TAG_NAME_PATTERN", "Tag", "TagDict"]
