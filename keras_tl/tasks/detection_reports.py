"""The detector's pictures: images with their true and predicted boxes
(`detections.png` beside a run, `keras-tl predict --draw`), and training
curves with the COCO mAP measured after training."""

import numpy as np

from keras_tl import reports

TRUE_COLOUR = "lime"
PREDICTED_COLOUR = "red"
MIN_SCORE = 0.3  # predictions below it are left out of the pictures


def _label(ax, x, y, text, colour, below, image_height):
    """A box's label: predicted ones above its top edge, true ones under its
    bottom edge, each turned inwards where the edge meets the image's."""
    margin = 0.08 * image_height
    if below:
        va = "top" if y < image_height - margin else "bottom"
    else:
        va = "bottom" if y > margin else "top"
    ax.text(x, y, text, color="black" if colour == TRUE_COLOUR else "white", fontsize=7,
            va=va, ha="left", bbox=dict(facecolor=colour, alpha=0.7, pad=1, linewidth=0))


def _draw_image(ax, image, size, found, truth, class_names, min_score):
    """One image at its own aspect ratio with its boxes; returns how many
    predictions were drawn."""
    from matplotlib.patches import Rectangle

    height, width = size
    ax.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8"),
              extent=(0, width, height, 0), interpolation="bilinear")
    for box, class_id in zip(truth.get("boxes", []), truth.get("class_ids", [])):
        (x0, y0, x1, y1) = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=TRUE_COLOUR,
                               linewidth=1.5))
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        _label(ax, x0, y1, name, TRUE_COLOUR, below=True, image_height=height)
    shown = [f for f in found if f["score"] >= min_score]
    for prediction in shown:
        (x0, y0, x1, y1) = prediction["box"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                               edgecolor=PREDICTED_COLOUR, linewidth=1.5))
        _label(ax, x0, y0, f"{prediction['class_name']} {prediction['score']:.2f}",
               PREDICTED_COLOUR, below=False, image_height=height)
    if not shown:
        best = max((f["score"] for f in found), default=None)
        message = ("no predictions" if best is None else
                   f"no prediction scored {min_score:.2f} or more\n(best: {best:.2f})")
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
                fontsize=9, bbox=dict(facecolor="white", alpha=0.85, linewidth=0))
    return len(shown)


def plot_detections(images, predictions, path, names=None, sizes=None, truth=None,
                    class_names=(), min_score=MIN_SCORE, title=None):
    """Draws images with their predicted boxes (red, labelled with class and
    score) and, when given, true boxes (green, labelled with class); each
    image at its own aspect ratio, titled with its name and counts, with a
    note where nothing was predicted; writes one PNG.

    Args:
        images: per image an RGB `[h, w, 3]` array, 0-255.
        predictions: per image, `[{"class_name", "score", "box"}, ...]`
            (`ObjectDetection.postprocess`), boxes in pixels of `sizes`.
        names: per image, the title (its file name); default `image N`.
        sizes: per image, the `(height, width)` it is drawn at, boxes in
            its pixels (a photo resized to the model's input is drawn at
            the photo's size); default each array's own.
        truth: per image, `{"boxes": [[xmin, ymin, xmax, ymax], ...],
            "class_ids": [...]}` in the same pixels.
        class_names: names of the true boxes' `class_ids`.
        min_score: predictions below it are not drawn.
        title: the figure's title above every image.

    Example:
    >>> plot_detections([np.zeros((32, 64, 3))],
    ...                 [[{"class_name": "cat", "score": 0.9, "box": [4, 4, 20, 20]}]],
    ...                 str(tmp_path / "boxes.png"), names=["cat.jpg"],
    ...                 truth=[{"boxes": [[5, 5, 21, 21]], "class_ids": [0]}],
    ...                 class_names=["cat"])
    ['cat.jpg: 1 true, 1 predicted']
    """
    from matplotlib.patches import Patch

    sizes = sizes or [np.shape(image)[:2] for image in images]
    names = names or [f"image {i + 1}" for i in range(len(images))]
    fig, axes = reports.image_grid([h / w for h, w in sizes])
    titles = []
    for i, (ax, image, size) in enumerate(zip(axes, images, sizes)):
        image_truth = truth[i] if truth and i < len(truth) else None
        shown = _draw_image(ax, image, size, predictions[i], image_truth or {}, class_names,
                            min_score)
        counts = (f"{shown} detection{'' if shown == 1 else 's'}" if image_truth is None
                  else f"{len(image_truth.get('boxes', []))} true, {shown} predicted")
        titles.append(f"{names[i]}: {counts}")
        ax.set_title(titles[-1], fontsize=9)
    handles = [Patch(fill=False, edgecolor=PREDICTED_COLOUR,
                     label=f"predicted: class and score (score {min_score:.2f} or more)")]
    if truth:
        handles.insert(0, Patch(fill=False, edgecolor=TRUE_COLOUR, label="true: class"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title)
    reports.save_figure(fig, path)
    return titles


def plot_detection_curves(histories, metrics, path):
    """The run's loss curves, and its validation and test COCO mAP after
    training (mAP@[.5:.95], @.5, @.75) as bars.

    Example:
    >>> histories = {"head": {"loss": [2.3, 1.9], "val_loss": [2.2, 2.0]}}
    >>> plot_detection_curves(histories, {"validation": {"map": 0.4, "map_50": 0.7,
    ...                                                  "map_75": 0.35}},
    ...                       str(tmp_path / "curves.png"))
    >>> (tmp_path / "curves.png").exists()
    True
    """
    labels = {"map": "mAP", "map_50": "mAP@.5", "map_75": "mAP@.75"}
    scores = {split: {label: float(values[key]) for key, label in labels.items()
                      if key in values}
              for split, values in (metrics or {}).items() if isinstance(values, dict)}
    reports.plot_training_curves(histories, path, final_scores=scores)
