"""Name -> `BackboneSpec`: the one place a backbone name is looked up."""

import difflib
import re

from keras_tl.backbones.spec import BackboneSpec
from keras_tl.errors import BackboneError
from keras_tl.registry import Registry


def name_key(name):
    """The form names are compared in: lower case, letters and digits only.

    Example:
    >>> name_key("EfficientNet-Lite0"), name_key("efficientnet_lite0")
    ('efficientnetlite0', 'efficientnetlite0')
    """
    return re.sub(r"[^a-z0-9]", "", name.lower())


class _BackboneRegistry(Registry):
    def unknown_message(self, name):
        names = self.names()
        close = difflib.get_close_matches(name.lower(), names, n=5, cutoff=0.5)
        close += [self.canonical(key) for key in
                  difflib.get_close_matches(name_key(name), self.aliases(), n=5, cutoff=0.6)]
        close = list(dict.fromkeys(close))[:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (f"Unknown backbone {name!r}.{hint} keras_tl.list_backbones() lists all "
                f"{len(names)} names; a keras_hub preset (a local folder, "
                "'kaggle://...' or 'hf://...') or a keras.Model also work.")


BACKBONES = _BackboneRegistry("Backbone", plural="backbones", error=BackboneError, key=name_key)


def register_backbone(spec, overwrite=False):
    """Adds a `BackboneSpec` to the registry under its name and aliases.

    Example:
    >>> register_backbone(get_backbone_spec("resnet50"), overwrite=True).name
    'resnet50'
    """
    if not isinstance(spec, BackboneSpec):
        raise TypeError(f"Expected a BackboneSpec, got {type(spec).__name__}.")
    return BACKBONES.register(spec.name, spec, overwrite=overwrite, aliases=spec.aliases)


def list_backbones(modality=None):
    """Sorted names of the registered backbones (of one modality: `"image"`,
    `"text"` or `"audio"`).

    Example:
    >>> "mobilenet_v2" in list_backbones("image"), list_backbones("text")
    (True, ['all_minilm_l6_v2'])
    """
    return sorted(name for name in BACKBONES.names()
                  if modality is None or BACKBONES.get(name).modality == modality)


def get_backbone_spec(name):
    """Returns the `BackboneSpec` registered under `name` (case, `_` and `-`
    are ignored), or raises a `BackboneError` listing the closest names.

    Example:
    >>> get_backbone_spec("ResNet50").name
    'resnet50'
    >>> get_backbone_spec("resnet_5O")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_tl.errors.BackboneError: Unknown backbone 'resnet_5O'. Did you mean: ...
    """
    return BACKBONES.get(name)
