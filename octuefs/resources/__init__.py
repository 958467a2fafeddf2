"""`octue.resources` for octuefs: change `from octue.resources import ...` to `from octuefs.resources import ...`.

The submodules mirror Octue's (`octuefs.resources.datafile`, `.dataset`, `.label`, `.tag`,
`.filter_containers`), so imports such as `from octue.resources.label import LabelSet` carry over by
the same one-word change. `Tag` is octuefs's own (Octue 0.69 has none; see its docstring).
"""

from octuefs.resources.datafile import Datafile
from octuefs.resources.dataset import Dataset
from octuefs.resources.label import Label, LabelSet
from octuefs.resources.tag import Tag, TagDict

__all__ = ["Datafile", "Dataset", "Label", "LabelSet", "Tag", "TagDict"]
