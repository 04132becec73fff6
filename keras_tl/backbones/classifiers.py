"""The 1000-class ImageNet classifiers of registered backbones (each spec's
`classifier`); `keras_tl.weights.decode_imagenet` names their classes."""

from keras_tl.backbones.builder import resolve_weights
from keras_tl.backbones.registry import get_backbone_spec, list_backbones
from keras_tl.errors import BackboneError


def imagenet_classifier(name, weights="imagenet", image_size=None,
                        classifier_activation="softmax"):
    """A registered backbone's 1000-class ImageNet classifier, taking RGB
    pixels in [0, 255] and returning probabilities (or logits with
    `classifier_activation=None`).

    Backbones imported from PyTorch checkpoints (`efficientnet_lite0`,
    `efficientnet_lite1`, `mobilenet_v2_torch`) need no network;
    `keras.applications` ones download their weights as Keras does.
    `weights` is resolved as for `keras_tl.load_backbone` (a tag of the
    backbone, `None` or a weights file the classifier reads).

    Example:
    >>> model = imagenet_classifier("mobilenet_v2_torch", image_size=96)
    >>> model.output.shape
    (None, 1000)
    """
    spec = get_backbone_spec(name)
    if spec.classifier is None:
        raise BackboneError(
            f"Backbone {spec.name!r} has no ImageNet classifier; those that have one: "
            f"{', '.join(imagenet_classifier_names())}.")
    resolved = resolve_weights(spec, weights)
    spec = spec.for_weights(resolved.tag)
    size = image_size or spec.input_size
    if isinstance(size, int):
        size = (size, size)
    return spec.classifier(weights=resolved.value, input_shape=spec.input_shape(size),
                           classifier_activation=classifier_activation)


def imagenet_classifier_names():
    """Sorted names of the registered backbones with an ImageNet classifier.

    Example:
    >>> "efficientnet_lite0" in imagenet_classifier_names()
    True
    """
    return [name for name in list_backbones() if get_backbone_spec(name).classifier is not None]
