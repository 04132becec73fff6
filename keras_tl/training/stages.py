"""Stages of a fine-tuning run: what is trainable, for how long, how fast."""

import dataclasses
import math
from typing import Dict, Optional, Union

from keras_tl.training.optimizers import backbone_groups

AUTO = "auto"


@dataclasses.dataclass
class Stage:
    """One phase of `keras_tl.finetune`.

    Attributes:
        name: shown in logs and metrics (`"head"`, `"finetune"`...).
        unfreeze: what of the backbone trains: `None` (frozen), `"all"`, an
            int N (top N layers holding weights; for text encoders, top N
            transformer layers), a layer/block name to unfreeze from, or a
            float in (0, 1): that fraction of the backbone's blocks
            (`keras_tl.freezing.block_name`), from the top, rounded up.
        epochs: maximum epochs (early stopping may end the stage sooner).
        learning_rate: peak learning rate, or `"auto"`: the learning-rate
            finder's suggestion for this stage (`keras_tl.find_learning_rate`).
        warmup: fraction of the stage's steps spent warming up linearly
            from 0 (0 disables warm-up).
        schedule: `"constant"` or `"cosine"` (decay to 0 after warm-up).
        train_batchnorm: let BatchNorm layers of the unfrozen part update.
        lora_rank: for keras_hub encoders, train LoRA adapters of this rank
            instead of unfreezing weights.
        layer_decay: layer-wise learning rates: each backbone block trains
            at `learning_rate * layer_decay ** d`, `d` its distance from the
            top (the head at 0 and full rate, the top block at 1...).
        lr_multipliers: `{block name or layer-name prefix: factor}`
            multiplying those layers' rates (`"head"` for the new layers),
            on top of `layer_decay`.
        cached_epochs: epoch cap when the stage trains on cached backbone
            features (cheap epochs; see `keras_tl.finetune(cache_features=)`)
            with early stopping on: it then runs up to this many epochs,
            until validation loss stops improving, instead of `epochs`.
            `None`: `epochs` everywhere. The CLI's `--head-epochs N` sets
            `epochs=N, cached_epochs=None`; `--head-cached-epochs` sets it.

    Example:
    >>> Stage("finetune", unfreeze=20, epochs=3, learning_rate=1e-4, layer_decay=0.8).layer_decay
    0.8
    """

    name: str
    unfreeze: Optional[Union[str, int]] = None
    epochs: int = 5
    learning_rate: Union[float, str] = 1e-3
    warmup: float = 0.0
    schedule: str = "constant"
    train_batchnorm: bool = False
    lora_rank: Optional[int] = None
    layer_decay: Optional[float] = None
    lr_multipliers: Optional[Dict[str, float]] = None
    cached_epochs: Optional[int] = None

    def __post_init__(self):
        from keras_tl.errors import ConfigError

        def fail(message):
            raise ConfigError(f"Stage {self.name!r}: {message}")

        if isinstance(self.unfreeze, float) and not 0 < self.unfreeze <= 1:
            fail(f"a fractional unfreeze must be in (0, 1], got {self.unfreeze!r}.")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            fail(f"epochs must be an int >= 0, got {self.epochs!r}.")
        if self.learning_rate != AUTO and (
                isinstance(self.learning_rate, (bool, str)) or not self.learning_rate > 0):
            fail(f"learning_rate must be > 0 or 'auto', got {self.learning_rate!r}.")
        if not 0 <= self.warmup < 1:
            fail(f"warmup must be in [0, 1), got {self.warmup}.")
        if self.schedule not in ("constant", "cosine"):
            fail(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}.")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            fail(f"layer_decay must be in (0, 1], got {self.layer_decay!r}.")
        if self.cached_epochs is not None and (
                isinstance(self.cached_epochs, bool) or not isinstance(self.cached_epochs, int)
                or self.cached_epochs < 0):
            fail(f"cached_epochs must be an int >= 0, got {self.cached_epochs!r}.")
        if self.lr_multipliers is not None:
            if not isinstance(self.lr_multipliers, dict):
                fail(f"lr_multipliers must be a dict, got {self.lr_multipliers!r}.")
            for key, value in self.lr_multipliers.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    fail(f"lr_multipliers[{key!r}] must be a number >= 0, got {value!r}.")

    @property
    def trains_backbone(self):
        """Whether any backbone weight trains in this stage.

        Example:
        >>> Stage("head").trains_backbone, Stage("ft", unfreeze="all").trains_backbone
        (False, True)
        """
        return bool(self.lora_rank) or self.unfreeze not in (None, "none")

    def to_config(self):
        """JSON-ready dict of the stage.

        Example:
        >>> Stage("head").to_config()["learning_rate"]
        0.001
        """
        return dataclasses.asdict(self)


HEAD_CACHED_EPOCHS = 50


FINETUNE_FRACTION = 0.25
FINETUNE_CACHED_EPOCHS = 10


def default_stages(head_epochs=5, finetune_epochs=5, learning_rate=1e-3,
                   finetune_learning_rate=None, unfreeze=FINETUNE_FRACTION,
                   head_cached_epochs=HEAD_CACHED_EPOCHS,
                   finetune_cached_epochs=FINETUNE_CACHED_EPOCHS, layer_decay=None):
    """The two-stage default: head warm-up with the backbone frozen, then
    fine-tuning of the top quarter of the backbone's blocks at a 10x lower
    rate with warm-up and cosine decay.

    Each stage runs its `*_epochs` on the backbone; on cached features
    (cheap epochs: the frozen part is computed once, `cache_features`) the
    head trains up to `head_cached_epochs` until validation loss stops
    improving, and fine-tuning runs up to `finetune_cached_epochs`.
    Fine-tuning the top quarter matched fine-tuning everything on the
    Fashion-MNIST demo (docs/training.md) at a fraction of the cost;
    `unfreeze="all"` trains everything. `layer_decay` gives the fine-tuning
    stage layer-wise learning rates.

    Example:
    >>> [(s.name, s.unfreeze, s.epochs, s.cached_epochs) for s in default_stages()]
    [('head', None, 5, 50), ('finetune', 0.25, 5, 10)]
    """
    if finetune_learning_rate is None:
        finetune_learning_rate = (
            AUTO if learning_rate == AUTO else learning_rate / 10)
    return [
        Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=learning_rate,
              cached_epochs=head_cached_epochs),
        Stage(
            "finetune",
            unfreeze=unfreeze,
            epochs=finetune_epochs,
            learning_rate=finetune_learning_rate,
            warmup=0.1,
            schedule="cosine",
            layer_decay=layer_decay,
            cached_epochs=finetune_cached_epochs,
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
    stages = [Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=learning_rate,
                    cached_epochs=HEAD_CACHED_EPOCHS)]
    rate = finetune_learning_rate or (AUTO if learning_rate == AUTO else learning_rate / 10)
    for index, unfreeze in enumerate(blocks, start=1):
        stages.append(
            Stage(f"unfreeze_{index}", unfreeze=unfreeze, epochs=epochs,
                  learning_rate=rate, warmup=0.1, schedule="cosine")
        )
        rate = rate if rate == AUTO else rate / 2  # "auto" finds each stage's own
    return stages


def resolve_unfreeze(model, stage):
    """`stage` with a fractional `unfreeze` (the top fraction of the
    backbone's blocks, rounded up) replaced by the name of the first layer
    to unfreeze (`"all"` when that is every block); other stages as they are.

    Example:
    >>> import keras
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = inputs
    >>> for block in (1, 2):
    ...     x = keras.layers.Conv2D(4, 3, name=f"block{block}_conv")(x)
    >>> backbone = keras.Model(inputs, x, name="backbone")
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(backbone(inputs)))
    >>> resolve_unfreeze(model, Stage("ft", unfreeze=0.5)).unfreeze
    'block2_conv'
    >>> resolve_unfreeze(model, Stage("ft", unfreeze=1.0)).unfreeze
    'all'
    """
    if not isinstance(stage.unfreeze, float):
        return stage
    groups = backbone_groups(model)
    count = min(max(math.ceil(stage.unfreeze * len(groups)), 1), len(groups))
    first = "all" if count == len(groups) else groups[len(groups) - count][1][0].name
    return dataclasses.replace(stage, unfreeze=first)
