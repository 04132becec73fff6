"""Pictures every task writes beside a run (training curves, the confusion
matrix, grids of images, saved with fonts that draw every label), and the
machine description every benchmark result names.

Matplotlib is imported inside the functions: `import keras_tl` and the CLI
do not pay its start-up.
"""

import functools
import os
import platform
import warnings

import numpy as np

from keras_tl.version import __version__


def machine_info():
    """What a measured number ran on: CPU model, core count, backend and
    versions, and that the machine may have been shared.

    Example:
    >>> sorted(machine_info())
    ['cpu', 'cpus', 'keras', 'keras_backend', 'keras_tl', 'python', 'tensorflow']
    """
    import keras

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import tensorflow as tf


    return dict(cpu=cpu, cpus=os.cpu_count(), python=platform.python_version(),
                keras=keras.__version__, keras_backend=keras.backend.backend(),
                tensorflow=tf.__version__, keras_tl=__version__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


@functools.lru_cache(maxsize=None)
def _glyphs(font_path):
    from matplotlib import ft2font

    try:
        return frozenset(chr(code) for code in ft2font.FT2Font(font_path).get_charmap())
    except (OSError, RuntimeError, ValueError):  # a font file FreeType cannot read
        return frozenset()


def font_families(text):
    """The font families that draw every character of `text`: matplotlib's
    default font, then installed fonts with the glyphs it lacks (class names
    in Chinese, Japanese, Arabic...). Warns once naming the characters no
    installed font has; matplotlib draws those as empty boxes.

    Example:
    >>> font_families("cat 0.93")
    ['DejaVu Sans']
    >>> families = font_families("Ⓐ")  # not in DejaVu Sans: a font that has it follows
    >>> families[0], len(families)
    ('DejaVu Sans', 2)
    """
    from matplotlib import font_manager, rcParams

    default = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
    families = [font_manager.FontProperties(fname=default).get_name()]
    missing = {c for c in text if c.isprintable() and not c.isspace()} - _glyphs(default)
    for entry in font_manager.fontManager.ttflist:
        if not missing:
            break
        # matplotlib's "Last Resort" font has a placeholder box for every character
        if entry.name in families or entry.name.startswith("Last Resort"):
            continue
        covered = missing & _glyphs(entry.fname)
        if covered:
            families.append(entry.name)
            missing -= covered
    if missing:
        warnings.warn(
            f"No installed font has the characters {''.join(sorted(missing))!r}: the pictures "
            "draw them as empty boxes. Install a font that has them (for Chinese, Japanese "
            "and Korean: apt-get install fonts-noto-cjk) and write the reports again.",
            UserWarning)
    return families


def save_figure(fig, path, dpi=100):
    """Writes `fig` as a PNG and closes it, every text in fonts that draw
    all its characters (`font_families`).

    Example:
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.set_title("cat")
    >>> save_figure(fig, str(tmp_path / "cat.png"))
    >>> (tmp_path / "cat.png").exists()
    True
    """
    from matplotlib.text import Text

    with warnings.catch_warnings():
        # matplotlib warns once per missing glyph; font_families says it once for all
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from")
        fig.canvas.draw()  # creates the tick labels, so their text is known
        texts = [t for t in fig.findobj(Text) if t.get_text()]
        families = font_families("".join(t.get_text() for t in texts))
        if len(families) > 1:
            for text in texts:
                text.set_fontfamily(families)
        fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)


def _stage_spans(histories):
    """`(name, first_epoch, last_epoch)` of each stage, epochs counted over the run."""
    spans, offset = [], 0
    for name, history in histories.items():
        epochs = max((len(values) for values in history.values()), default=0)
        spans.append((name, offset + 1, offset + epochs))
        offset += epochs
    return spans


def _run_series(histories, key):
    """`key`'s values over all stages, with their run-wide epoch numbers."""
    epochs, values = [], []
    for (_, first, _), history in zip(_stage_spans(histories), histories.values()):
        for i, value in enumerate(history.get(key, [])):
            epochs.append(first + i)
            values.append(float(value))
    return np.asarray(epochs), np.asarray(values)


def _plot_epochs(ax, histories, metric, spans):
    import matplotlib.ticker
    import matplotlib.transforms

    for key, label, style, colour in ((metric, "training", "-", "C0"),
                                      (f"val_{metric}", "validation", "--", "C1")):
        epochs, values = _run_series(histories, key)
        if len(values):
            ax.plot(epochs, values, style, color=colour, marker="o", markersize=4, label=label)
    above = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for i, (name, first, last) in enumerate(spans):
        if last < first:
            continue  # a stage of 0 epochs
        ax.axvspan(first - 0.5, last + 0.5, color="0.5", alpha=0.12 if i % 2 == 0 else 0.04,
                   linewidth=0)
        ax.text((first + last) / 2, 1.01, name, transform=above, ha="center", va="bottom",
                fontsize=8, color="0.3")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch (shaded bands: stages)")
    ax.set_title(metric, pad=16)
    if ax.get_lines():
        ax.legend(fontsize=8)


def _plot_scores(ax, final_scores):
    splits = [split for split, scores in final_scores.items() if scores]
    names = list(dict.fromkeys(name for split in splits for name in final_scores[split]))
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        values = [final_scores[split].get(name, np.nan) for name in names]
        positions = np.arange(len(names)) + (i - (len(splits) - 1) / 2) * width
        bars = ax.bar(positions, values, width, label=split, color=f"C{i + 2}")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_title("after training", pad=16)
    if splits:
        ax.legend(fontsize=8)


def plot_training_curves(histories, path, metric="accuracy", final_scores=None):
    """Loss (log axis when positive) and `metric` over all epochs, each
    stage a shaded band named above it, training solid and validation
    dashed; `final_scores` (`{split: {name: value}}`, measured once after
    training, such as a detector's mAP) are drawn as bars. A panel with no
    data is left out.

    Example:
    >>> histories = {"head": {"loss": [0.9, 0.6], "accuracy": [0.5, 0.7]},
    ...              "fine_tune": {"loss": [0.5], "accuracy": [0.8]}}
    >>> plot_training_curves(histories, str(tmp_path / "curves.png"))
    >>> (tmp_path / "curves.png").exists()
    True
    """
    plt = _pyplot()
    spans = _stage_spans(histories)
    panels = ["loss"]
    if any(h.get(metric) or h.get(f"val_{metric}") for h in histories.values()):
        panels.append(metric)
    if final_scores and any(final_scores.values()):
        panels.append("scores")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False,
                             layout="constrained")
    for ax, panel in zip(axes.flat, panels):
        if panel == "scores":
            _plot_scores(ax, final_scores)
            continue
        _plot_epochs(ax, histories, panel, spans)
        if panel == "loss":
            values = np.concatenate([_run_series(histories, k)[1] for k in ("loss", "val_loss")])
            if len(values) and np.all(values > 0):
                import matplotlib.ticker

                ax.set_yscale("log")
                # plain numbers ("0.1", "2.2"), not "10^-1" or "2.2 x 10^0"
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                    lambda value, _: f"{value:g}"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
                ax.set_ylabel("log scale")
    fig.suptitle("Training curves")
    save_figure(fig, path)


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
    """Writes the validation confusion matrix as a PNG, titled with the
    number of items and the accuracy; returns the counts.

    Example:
    >>> import keras, tensorflow as tf
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    >>> scores = np.eye(2, dtype="float32")[[0, 1, 1]]  # predicts 0, 1, 1
    >>> dataset = tf.data.Dataset.from_tensor_slices((scores, [0, 0, 1])).batch(2)
    >>> plot_confusion_matrix(model, dataset, ["cat", "dog"], str(tmp_path / "cm.png"))
    array([[1, 1],
           [0, 1]])
    """
    plt = _pyplot()
    matrix = confusion_matrix(model, dataset, len(class_names))
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    size = max(4.5, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = f"accuracy {correct / total:.1%} ({correct} right)" if total else "no items"
    ax.set_title(f"Validation confusion matrix\n{total} items, {accuracy}")
    save_figure(fig, path)
    return matrix


def image_grid(aspects, columns=3, width=4.0):
    """A figure with one blank axes per image, rows sized for the images'
    `aspects` (height / width) so none is squeezed; returns
    `(figure, axes)`. Draw each image with `imshow(..., extent=(0, w, h, 0))`.

    Example:
    >>> fig, axes = image_grid([0.5, 1.0, 2.0, 0.75])
    >>> len(axes), fig.get_size_inches().round(1).tolist()
    (4, [12.0, 12.7])
    >>> import matplotlib.pyplot as plt
    >>> plt.close(fig)
    """
    plt = _pyplot()
    count = len(aspects)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    # a very tall image would make a very tall row: it is drawn smaller instead
    heights = [width * min(max(aspects[r * columns:(r + 1) * columns]), 2.0) for r in range(rows)]
    fig = plt.figure(figsize=(width * columns, sum(heights) + 0.5 * rows + 0.7),
                     layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw=dict(height_ratios=heights))
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat[:count])
