"""Stages of a fine-tuning run: what is trainable, for how long, how fast."""

import dataclasses
from typing import Optional, Union


@dataclasses.dataclass
class Stage:
    """One phase of `keras_tl.finetune`.

    Attributes:
        name: shown in logs and metrics (`"head"`, `"finetune"`...).
        unfreeze: what of the backbone trains: `None` (frozen), `"all"`, an
            int N (top N layers holding weights; for text encoders, top N
            transformer layers) or a layer/block name to unfreeze from.
        epochs: maximum epochs (early stopping may end the stage sooner).
        learning_rate: peak learning rate.
        warmup: fraction of the stage's steps spent warming up linearly
            from 0 (0 disables warm-up).
        schedule: `"constant"` or `"cosine"` (decay to 0 after warm-up).
        train_batchnorm: let BatchNorm layers of the unfrozen part update.
        lora_rank: for keras_hub encoders, train LoRA adapters of this rank
            instead of unfreezing weights.

    Example:
    >>> Stage("finetune", unfreeze=20, epochs=3, learning_rate=1e-4)
    """

    name: str
    unfreeze: Optional[Union[str, int]] = None
    epochs: int = 5
    learning_rate: float = 1e-3
    warmup: float = 0.0
    schedule: str = "constant"
    train_batchnorm: bool = False
    lora_rank: Optional[int] = None

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"Stage {self.name!r}: epochs must be >= 0, got {self.epochs}.")
        if not self.learning_rate > 0:
            raise ValueError(
                f"Stage {self.name!r}: learning_rate must be > 0, got {self.learning_rate}."
            )
        if not 0 <= self.warmup < 1:
            raise ValueError(f"Stage {self.name!r}: warmup must be in [0, 1), got {self.warmup}.")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(
                f"Stage {self.name!r}: schedule must be 'constant' or 'cosine', "
                f"got {self.schedule!r}."
            )

    def to_config(self):
        """JSON-ready dict of the stage.

        Example:
        >>> Stage("head").to_config()["learning_rate"]
        0.001
        """
        return dataclasses.asdict(self)


def default_stages(head_epochs=5, finetune_epochs=5, learning_rate=1e-3,
                   finetune_learning_rate=None, unfreeze="all"):
    """The two-stage default: head warm-up with the backbone frozen, then
    fine-tuning at a 10x lower rate with warm-up and cosine decay.

    Example:
    >>> [s.name for s in default_stages()]
    ['head', 'finetune']
    """
    if finetune_learning_rate is None:
        finetune_learning_rate = learning_rate / 10
    return [
        Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=learning_rate),
        Stage(
            "finetune",
            unfreeze=unfreeze,
            epochs=finetune_epochs,
            learning_rate=finetune_learning_rate,
            warmup=0.1,
            schedule="cosine",
        ),
    ]


def gradual_stages(blocks=(2, 4, "all"), epochs=2, learning_rate=1e-3, head_epochs=None,
                   finetune_learning_rate=None):
    """Head warm-up, then progressively larger parts of the backbone, each
    stage at half the rate of the one before (ULMFiT-style gradual
    unfreezing), starting at `finetune_learning_rate` (default
    `learning_rate / 10`). `head_epochs` defaults to `epochs`.

    Example:
    >>> [s.unfreeze for s in gradual_stages((10, "all"))]
    [None, 10, 'all']
    """
    head_epochs = epochs if head_epochs is None else head_epochs
    stages = [Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=learning_rate)]
    rate = finetune_learning_rate or learning_rate / 10
    for index, unfreeze in enumerate(blocks, start=1):
        stages.append(
            Stage(f"unfreeze_{index}", unfreeze=unfreeze, epochs=epochs,
                  learning_rate=rate, warmup=0.1, schedule="cosine")
        )
        rate /= 2
    return stages
