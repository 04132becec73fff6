"""ImageNet classifiers and offline decoding of their 1000 classes."""

import functools
import os

import numpy as np

_CLASSES_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "datasets",
    "imagenet_classes.txt",
)


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ImageNet-1k classes in the standard (sorted WordNet id) order,
    as `(wnid, name)` pairs, read from the file shipped with keras_tl.

    Example:
    >>> imagenet_classes()[281]
    ('n02123045', 'tabby')
    """
    with open(_CLASSES_FILE, encoding="utf-8") as f:
        classes = tuple(tuple(line.split(" ", 1)) for line in f.read().splitlines() if line)
    if len(classes) != 1000:
        raise RuntimeError(f"{_CLASSES_FILE} holds {len(classes)} classes, not 1000.")
    return classes


def decode_imagenet(probs, top=5):
    """The `top` most likely ImageNet classes of each row of `probs`.

    Args:
        probs: `(n, 1000)` (or `(1000,)`) probabilities or logits.
        top: how many classes per row.

    Returns:
        A list (one per row) of lists of `(wnid, name, score)`, best first.

    Example:
    >>> decode_imagenet(model.predict(images), top=1)
    [[('n07920052', 'espresso', 0.94)]]
    """
    probs = np.asarray(probs)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.ndim != 2 or probs.shape[1] != 1000:
        raise ValueError(f"decode_imagenet expects (n, 1000) scores; got shape {probs.shape}.")
    classes = imagenet_classes()
    results = []
    for row in probs:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results


def imagenet_classifier(name, weights="imagenet", image_size=None,
                        classifier_activation="softmax"):
    """A registered backbone's 1000-class ImageNet classifier, taking RGB
    pixels in [0, 255] and returning probabilities (or logits with
    `classifier_activation=None`).

    Backbones imported from PyTorch checkpoints (`efficientnet_lite0`,
    `efficientnet_lite1`, `mobilenet_v2_torch`) need no network;
    `keras.applications` ones download their weights as Keras does.

    Example:
    >>> model = imagenet_classifier("efficientnet_lite0")
    >>> decode_imagenet(model.predict(images_0_255), top=3)
    """
    import keras

    from keras_tl.backbones import get_backbone_spec
    from keras_tl.backbones._torch_checkpoints import CLASSIFIERS

    spec = get_backbone_spec(name)
    size = image_size or spec.input_size
    if isinstance(size, int):
        size = (size, size)
    input_shape = tuple(size) + (3,)
    if spec.name in CLASSIFIERS:
        return CLASSIFIERS[spec.name](
            weights=weights, input_shape=input_shape,
            classifier_activation=classifier_activation,
        )
    prefix = "keras.applications."
    if spec.source.startswith(prefix):
        app = getattr(keras.applications, spec.source[len(prefix):])
        inputs = keras.Input(input_shape)
        body = app(include_top=True, weights=weights, input_shape=input_shape,
                   classifier_activation=classifier_activation)
        outputs = body(spec.preprocessing.layer()(inputs))
        return keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")
    raise ValueError(f"Backbone {spec.name!r} has no ImageNet classifier.")
