"""Shared test helpers: tiny backbones and data that train in seconds."""

import os

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def tiny_backbone(size=16, name="tiny"):
    """A two-block conv backbone with BatchNorm, named like keras.applications."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for block, filters in ((1, 4), (2, 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
    return keras.Model(inputs, x, name=name)


def colour_arrays(per_class=12, size=16, seed=0):
    """Noisy images whose class is their dominant colour."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        base = np.asarray(rgb, dtype="float32")
        noise = rng.normal(0, 25, (per_class, size, size, 3))
        images.append(np.clip(base + noise, 0, 255).astype("uint8"))
        labels += [label] * per_class
    return np.concatenate(images), np.asarray(labels), list(COLOURS)


def write_image_folder(root, per_class=8, size=20, grayscale_first=False):
    """Writes colour_arrays as `root/<class>/<i>.png` and returns root."""
    from PIL import Image

    images, labels, names = colour_arrays(per_class, size)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, names[label])
        os.makedirs(folder, exist_ok=True)
        picture = Image.fromarray(image)
        if grayscale_first and i == 0:
            picture = picture.convert("L")
        picture.save(os.path.join(folder, f"{i:03d}.png"))
    return str(root)


def weights_of(layer):
    """A copy of a layer's weights as NumPy arrays."""
    return [np.array(w) for w in layer.get_weights()]
