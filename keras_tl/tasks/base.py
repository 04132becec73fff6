"""The contract between a task (image or text) and the training loop."""

import dataclasses
from typing import Any, Callable, Dict, List, Optional


@dataclasses.dataclass
class PreparedTask:
    """Everything `keras_tl.finetune` needs to run its stages.

    Attributes:
        model: an uncompiled `keras.Model` with a layer named `"backbone"`,
            returning softmax probabilities.
        class_names: class names, index i for output i.
        train: batched `tf.data.Dataset` of `(inputs, labels)` (int labels).
        validation: the same for validation, or `None`.
        test: the same for test, or `None`.
        apply_stage: `apply_stage(model, stage)` sets `trainable` flags for a
            `keras_tl.Stage` (the loop recompiles afterwards).
        info: JSON-ready facts for metadata files: `modality`, `backbone`,
            `weights`, `input_size` / `sequence_length`, `preprocessing`...
        inference_model: what export and predict use, when it differs from
            `model` (e.g. a text model that takes raw strings); else `None`.

    Example:
    >>> task = prepare_image_task("photos/", backbone="mobilenet_v2")
    >>> task.class_names
    ['cat', 'dog']
    """

    model: Any
    class_names: List[str]
    train: Any
    validation: Optional[Any]
    test: Optional[Any]
    apply_stage: Callable
    info: Dict[str, Any] = dataclasses.field(default_factory=dict)
    inference_model: Optional[Any] = None
