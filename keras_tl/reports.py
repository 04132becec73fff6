"""Training-curve and confusion-matrix plots written beside a run, and the
machine description every benchmark result names."""

import numpy as np


def machine_info():
    """What a measured number ran on: CPU model, core count, backend and
    versions, and that the machine may have been shared.

    Example:
    >>> sorted(machine_info())
    ['cpu', 'cpus', 'keras', 'keras_backend', 'keras_tl', 'python', 'tensorflow']
    """
    import os
    import platform

    import keras

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import tensorflow as tf

    from keras_tl.version import __version__

    return dict(cpu=cpu, cpus=os.cpu_count(), python=platform.python_version(),
                keras=keras.__version__, keras_backend=keras.backend.backend(),
                tensorflow=tf.__version__, keras_tl=__version__)


def plot_training_curves(histories, path):
    """Loss and accuracy over all epochs, stage boundaries marked.

    Example:
    >>> histories = {"head": {"loss": [0.9, 0.6], "accuracy": [0.5, 0.7]},
    ...              "fine_tune": {"loss": [0.5], "accuracy": [0.8]}}
    >>> plot_training_curves(histories, str(tmp_path / "curves.png"))
    >>> (tmp_path / "curves.png").exists()
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker.MaxNLocator)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        offset = 0
        for name, history in histories.items():
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = history.get(key, [])
                if values:
                    epochs = np.arange(offset + 1, offset + len(values) + 1)
                    ax.plot(epochs, values, style, marker="o", label=f"{name} {key}")
            offset += len(history.get(metric, []))
            if name != list(histories)[-1]:
                ax.axvline(offset + 0.5, color="gray", linestyle=":")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.suptitle("Training curves (dotted lines: stage boundaries)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(model, dataset, num_classes):
    """Counts `[true, predicted]` over a batched `(x, y)` dataset.

    Example:
    >>> import keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    >>> scores = np.eye(3, dtype="float32")[[0, 1, 2, 2]]  # predicts 0, 1, 2, 2
    >>> dataset = tf.data.Dataset.from_tensor_slices((scores, [0, 1, 1, 2])).batch(2)
    >>> confusion_matrix(model, dataset, 3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    matrix = np.zeros((num_classes, num_classes), dtype="int64")
    for x, y in dataset.as_numpy_iterator():
        predicted = np.asarray(model.predict_on_batch(x)).argmax(axis=1)
        np.add.at(matrix, (np.asarray(y).astype(int), predicted), 1)
    return matrix


def plot_confusion_matrix(model, dataset, class_names, path):
    """Writes the validation confusion matrix as a PNG; returns the counts.

    Example:
    >>> import keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    >>> scores = np.eye(2, dtype="float32")[[0, 1, 1]]  # predicts 0, 1, 1
    >>> dataset = tf.data.Dataset.from_tensor_slices((scores, [0, 0, 1])).batch(2)
    >>> plot_confusion_matrix(model, dataset, ["cat", "dog"], str(tmp_path / "cm.png"))
    array([[1, 1],
           [0, 1]])
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(model, dataset, len(class_names))
    size = max(4, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Validation confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return matrix


def plot_detections(images, predictions, class_names, path, truth=None, min_score=0.3):
    """Draws images with predicted boxes (red, with class and score) and,
    when given, true boxes (green); writes one PNG.

    Args:
        images: `[n, H, W, 3]` RGB 0-255.
        predictions: per image, `[{"class_name", "score", "box"}, ...]`
            (`ObjectDetection.postprocess`), boxes in the images' pixels.
        truth: per image, `{"boxes": [[xmin, ymin, xmax, ymax], ...],
            "class_ids": [...]}` in the same pixels.
        min_score: predictions below it are not drawn.

    Example:
    >>> plot_detections(np.zeros((1, 32, 32, 3)),
    ...                 [[{"class_name": "cat", "score": 0.9, "box": [4, 4, 20, 20]}]],
    ...                 ["cat"], str(tmp_path / "boxes.png"),
    ...                 truth=[{"boxes": [[5, 5, 21, 21]], "class_ids": [0]}])
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    count = len(images)
    columns = min(3, count)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8"))
        ax.axis("off")
        image_truth = truth[i] if truth and i < len(truth) else {}
        for box in image_truth.get("boxes", []):
            ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                   edgecolor="lime", linewidth=1.5))
        for found in predictions[i]:
            if found["score"] < min_score:
                continue
            (x0, y0, x1, y1) = found["box"]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="red",
                                   linewidth=1.5))
            ax.text(x0, y0, f"{found['class_name']} {found['score']:.2f}", color="white",
                    fontsize=7, va="bottom", bbox=dict(facecolor="red", alpha=0.6, pad=1))
    fig.suptitle("Validation images: true boxes green, predictions red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
