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
    >>> plot_training_curves(result.histories, "curves.png")
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
        ax.legend(fontsize=7)
    fig.suptitle("Training curves (dotted lines: stage boundaries)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(model, dataset, num_classes):
    """Counts `[true, predicted]` over a batched `(x, y)` dataset.

    Example:
    >>> confusion_matrix(model, task.validation, 3).sum()
    60
    """
    matrix = np.zeros((num_classes, num_classes), dtype="int64")
    for x, y in dataset.as_numpy_iterator():
        predicted = np.asarray(model.predict_on_batch(x)).argmax(axis=1)
        np.add.at(matrix, (np.asarray(y).astype(int), predicted), 1)
    return matrix


def plot_confusion_matrix(model, dataset, class_names, path):
    """Writes the validation confusion matrix as a PNG; returns the counts.

    Example:
    >>> plot_confusion_matrix(model, task.validation, names, "cm.png")
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
