"""`LabelledArrays`: decoded examples in memory, the form `Task.prepare`
splits and batches when a reader has nothing lazier to offer."""

import dataclasses
from typing import Any, List

import numpy as np


@dataclasses.dataclass
class LabelledArrays:
    """Inputs (an array, first axis the examples) with int labels indexing
    `class_names`.

    Example:
    >>> data = LabelledArrays(np.zeros((4, 2)), [0, 1, 0, 1], ["no", "yes"])
    >>> len(data), data.subset([1, 3]).labels.tolist()
    (4, [1, 1])
    """

    inputs: Any
    labels: np.ndarray
    class_names: List[str]

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype="int32")

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        """The examples at `indices`, same class names.

        Example:
        >>> LabelledArrays(np.arange(3), [0, 1, 1], ["a", "b"]).subset([2]).inputs.tolist()
        [2]
        """
        indices = np.asarray(indices, dtype="int64")
        return LabelledArrays(self.inputs[indices], self.labels[indices], self.class_names)
