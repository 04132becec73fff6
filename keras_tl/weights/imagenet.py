"""Offline decoding of the 1000 ImageNet classes (the classifiers are
`keras_tl.imagenet_classifier`)."""

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
    >>> scores = np.zeros(1000)
    >>> scores[[967, 281]] = [0.75, 0.25]
    >>> decode_imagenet(scores, top=2)
    [[('n07920052', 'espresso', 0.75), ('n02123045', 'tabby', 0.25)]]
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
