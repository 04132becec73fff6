"""Shared test helpers: tiny backbones, tiny text encoders and data that train
in seconds; the notebook runner. Test modules import from here, never from
each other; fixtures are in conftest.py."""

import os
import subprocess
import time

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


def tiny_pyramid_backbone(size=64):
    """Five stride-2 convolutions: feature maps at strides 2 to 32 (no
    BatchNormalization, whose moving statistics lag behind a few steps)."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for block, filters in enumerate((4, 8, 8, 16, 16), 1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"block{block}_conv")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
    return keras.Model(inputs, x, name="tiny")


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


def voc_folder(root, count=12, size=64):
    """Images with one red or blue 24 px square each, and their VOC annotations."""
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(root / "JPEGImages")
    os.makedirs(root / "Annotations")
    for i in range(count):
        image = np.full((size, size, 3), 200, "uint8")
        x0, y0 = rng.integers(4, size - 28, 2)
        name, colour = ("red", (220, 20, 20)) if i % 2 else ("blue", (20, 20, 220))
        image[y0:y0 + 24, x0:x0 + 24] = colour
        Image.fromarray(image).save(root / "JPEGImages" / f"{i}.png")
        (root / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.png</filename><size><width>{size}</width>"
            f"<height>{size}</height><depth>3</depth></size><object><name>{name}</name>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x0 + 24}</xmax>"
            f"<ymax>{y0 + 24}</ymax></bndbox></object></annotation>")
    return str(root)


# --- text ----------------------------------------------------------------------

POSITIVE = ["good", "great", "tasty", "love", "excellent", "fresh"]
NEGATIVE = ["bad", "awful", "stale", "hate", "terrible", "bland"]
FILLER = ["the", "a", "this", "product", "was", "is", "coffee", "tea", "really", "very"]
VOCABULARY = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!", ","]
              + POSITIVE + NEGATIVE + FILLER + ["##s", "##ly"])


def tiny_bert(num_layers=2, seed=0):
    """A 2-layer BERT (hidden 16) and its tokenizer with a 36-word vocabulary."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=num_layers, num_heads=2,
        hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    return backbone, tokenizer


def save_tiny_preset(folder):
    """Saves `tiny_bert()` as a keras_hub preset folder and returns its path."""
    backbone, tokenizer = tiny_bert()
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))
    return str(folder)


def sentiment_texts(per_class=24, seed=0):
    """Short reviews whose label is the kind of their opinion word."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in (("negative", NEGATIVE), ("positive", POSITIVE)):
        for _ in range(per_class):
            filler = list(rng.choice(FILLER, size=3))
            sentence = filler[:2] + [rng.choice(words)] + filler[2:]
            texts.append(" ".join(sentence).capitalize() + "!")
            labels.append(label)
    return texts, labels


def write_text_folder(root, per_class=6):
    """`sentiment_texts` as `root/<label>/<i>.txt`; returns root."""
    texts, labels = sentiment_texts(per_class)
    for i, (text, label) in enumerate(zip(texts, labels)):
        os.makedirs(os.path.join(root, label), exist_ok=True)
        with open(os.path.join(root, label, f"{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write(text)
    return str(root)


def write_text_csv(path, texts, labels, text_column="text", label_column="label"):
    """A CSV with the given columns; returns its path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", text_column, label_column])
        for i, (text, label) in enumerate(zip(texts, labels)):
            writer.writerow([i, text, label])
    return str(path)


# --- notebooks -----------------------------------------------------------------

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def execute_notebook(name, tmp_path, monkeypatch, timeout=900):
    """Runs examples/<name> in a fresh kernel (cwd examples/); returns the notebook."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("KERAS_TL_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("KERAS_TL_NOTEBOOK_OUTPUT", str(tmp_path))
    notebook = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": EXAMPLES}}).execute()
    return notebook


def notebook_text(notebook):
    """Everything the notebook's cells printed, as one string."""
    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") or str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


def fastest(command, runs=3, env=None):
    """`(seconds, completed process)`: the fastest of `runs` runs of
    `command`, for elapsed-time ratios measured in one test run."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        times.append(time.perf_counter() - start)
    return min(times), done
