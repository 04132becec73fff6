"""Freeze and unfreeze a classifier's backbone, layer by layer.

Every keras_tl model holds its feature extractor as a layer named
`"backbone"`. Changing `trainable` only takes effect once the model is
compiled again; `keras_tl.finetune` recompiles at each stage.

BatchNormalization layers stay in inference mode (`trainable=False`) when the
backbone is unfrozen, unless `train_batchnorm=True`: in Keras 3 a trainable
BN layer updates its moving statistics even inside `backbone(x,
training=False)`, which wrecks pretrained statistics on small batches.
"""

import re

import keras

from keras_tl import _compat
from keras_tl.errors import ConfigError

BACKBONE_LAYER = "backbone"

_BLOCK_PATTERNS = [
    r"transformer_layer_\d+",
    r"stage_?\d+_block_?\d+",
    r"conv\d+_block\d+",
    r"block_?\d+[a-z]?",
    r"mixed\d+",
    r"stage_?\d+",
]
_EMBEDDING_NAMES = re.compile(r"embedding|embeddings_layer_norm")


def get_backbone(model):
    """Returns the backbone layer of a keras_tl model.

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> get_backbone(model).name
    'backbone'
    """
    try:
        return model.get_layer(BACKBONE_LAYER)
    except ValueError:
        pass
    # a task model may nest it (a detector holds it inside its feature pyramid)
    for layer in _compat.flatten_layers(model, include_self=False):
        if layer.name == BACKBONE_LAYER and isinstance(layer, keras.Model):
            return layer
    raise ConfigError(
        f"Model {model.name!r} has no layer named {BACKBONE_LAYER!r}; keras_tl "
        "freezing helpers work on models built by keras_tl."
    )


def backbone_layers(model):
    """The backbone's top-level layers that hold weights, input to output:
    what `unfreeze_backbone(model, layers=N)` counts from the top.

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> [layer.name for layer in backbone_layers(model)][-2:]
    ['Conv_1', 'Conv_1_bn']
    """
    return [layer for layer in get_backbone(model).layers if layer.weights]


def freeze_backbone(model):
    """Freezes the whole backbone (the head stays trainable).

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> freeze_backbone(model) is model
    True
    >>> model.get_layer("backbone").trainable
    False
    """
    backbone = get_backbone(model)
    backbone.trainable = False
    return model


def unfreeze_backbone(model, layers="all", train_batchnorm=False):
    """Unfreezes the backbone, all of it or only its top.

    Args:
        model: a keras_tl classifier.
        layers: `"all"`; an int N to unfreeze the top N layers that hold
            weights; or the name (or name prefix, e.g. `"block6"` or
            `"conv5_block1"`) of the first layer to unfreeze, everything
            after it unfrozen too.
        train_batchnorm: let BatchNormalization layers update their
            statistics and scale/offset (default `False`).

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> _ = unfreeze_backbone(model, layers="block_16")
    >>> [layer.name for layer in backbone_layers(model) if layer.trainable]
    ['block_16_expand', 'block_16_depthwise', 'block_16_project', 'Conv_1']
    >>> _ = unfreeze_backbone(model, layers=20)  # top 20 layers with weights
    >>> sum(layer.trainable for layer in backbone_layers(model))  # BN layers stay frozen
    10
    """
    backbone = get_backbone(model)
    candidates = backbone_layers(model)
    start = _first_unfrozen_index(candidates, layers)
    backbone.trainable = True
    for index, layer in enumerate(candidates):
        layer.trainable = index >= start
    if not train_batchnorm:
        _freeze_batchnorm(backbone)
    return model


def _first_unfrozen_index(candidates, layers):
    if layers is None or layers == "none":
        return len(candidates)
    if layers == "all":
        return 0
    if isinstance(layers, bool):
        raise TypeError("layers must be 'all', an int or a layer name, not a bool.")
    if isinstance(layers, int):
        if layers < 0:
            raise ValueError(f"layers must be >= 0, got {layers}.")
        return max(len(candidates) - layers, 0)
    if isinstance(layers, str):
        for index, layer in enumerate(candidates):
            if layer.name == layers:
                return index
        for index, layer in enumerate(candidates):
            if layer.name.startswith(layers):
                return index
        names = [layer.name for layer in candidates]
        import difflib

        close = difflib.get_close_matches(layers, names, n=5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(
            f"No backbone layer is named or starts with {layers!r}.{hint} "
            "keras_tl.trainable_summary(model) lists the blocks."
        )
    raise TypeError(f"layers must be 'all', an int or a layer name; got {layers!r}.")


def _freeze_batchnorm(layer):
    for sub in _compat.flatten_layers(layer):
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.trainable = False


def block_name(layer_name):
    """The block a layer belongs to, from its name.

    Example:
    >>> block_name("conv2_block1_1_conv")
    'conv2_block1'
    """
    for pattern in _BLOCK_PATTERNS:
        match = re.search(pattern, layer_name)
        if match:
            return match.group(0)
    if _EMBEDDING_NAMES.search(layer_name):
        return "embeddings"
    return None


def trainable_summary(model):
    """Trainable and non-trainable parameter counts per backbone block and
    for the head.

    Returns a list of `{"block", "trainable", "non_trainable"}` dicts, the
    backbone's blocks in order, then `"head"`; layers outside any named block
    fall in `"stem"` (before the first block) or `"top"` (after).

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> _ = freeze_backbone(model)
    >>> for row in trainable_summary(model)[-3:]: print(row)
    {'block': 'block_16', 'trainable': 0, 'non_trainable': 478400}
    {'block': 'top', 'trainable': 0, 'non_trainable': 414720}
    {'block': 'head', 'trainable': 2562, 'non_trainable': 0}
    """
    rows = {}
    seen_block = False
    for layer in get_backbone(model).layers:
        if not layer.weights:
            continue
        name = block_name(layer.name)
        if name is None:
            name = "top" if seen_block else "stem"
        else:
            seen_block = True
        _add(rows, name, layer)
    for layer in model.layers:
        if layer.name != BACKBONE_LAYER:
            _add(rows, "head", layer)
    return [dict(block=name, **counts) for name, counts in rows.items()]


def _add(rows, name, layer):
    counts = rows.setdefault(name, {"trainable": 0, "non_trainable": 0})
    counts["trainable"] += _count(layer.trainable_weights)
    counts["non_trainable"] += _count(layer.non_trainable_weights)


def _count(weights):
    total = 0
    for w in weights:
        size = 1
        for dim in w.shape:
            size *= int(dim)
        total += size
    return total


def format_trainable_summary(model):
    """The per-block summary as an aligned text table.

    Example:
    >>> from keras_tl.backbones import load_backbone
    >>> from keras_tl.tasks.image_classifier import build_image_classifier
    >>> model = build_image_classifier(load_backbone("mobilenet_v2", weights=None, image_size=32), 2)
    >>> _ = freeze_backbone(model)
    >>> print(format_trainable_summary(model))
    block        trainable   non-trainable
    stem                 0           1,984
    block_1              0           5,568
    ...
    top                  0         414,720
    head             2,562               0
    total            2,562       2,257,984
    """
    rows = trainable_summary(model)
    width = max(len(r["block"]) for r in rows)
    lines = [f"{'block':<{width}}  {'trainable':>12}  {'non-trainable':>14}"]
    for r in rows:
        lines.append(f"{r['block']:<{width}}  {r['trainable']:>12,}  {r['non_trainable']:>14,}")
    total_t = sum(r["trainable"] for r in rows)
    total_n = sum(r["non_trainable"] for r in rows)
    lines.append(f"{'total':<{width}}  {total_t:>12,}  {total_n:>14,}")
    return "\n".join(lines)
