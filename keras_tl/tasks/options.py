"""Typed task options: what each task's `prepare` takes beyond the shared
arguments of `keras_tl.finetune`, declared once for the API's checks and
the `keras-tl` flags.

The tables live here, not in the task modules, because the command line
reads them before it imports anything heavy (the text task's module
imports Keras).

Example:
>>> [option.flag for option in KEYWORD_SPOTTING]
['--clip-seconds', '--augment', '--skip-corrupt', '--calibrate']
"""

import argparse
import dataclasses
from typing import Any, Callable, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Option:
    """One task option.

    Attributes:
        name: the keyword of `keras_tl.finetune` (and of the task's `prepare`).
        type: converts a command-line string (`int`, `float`, `str`, or a
            function such as `floats`); `bool` makes an on/off flag.
        default: the value when the option is not given.
        help: one line for `keras-tl finetune -h`.
        choices: the allowed values, or `None` for any.
        command_line: `False` for options that take Python objects (a
            tokenizer, a `Preprocessing`): no flag, keyword only.

    Example:
    >>> option = Option("clip_seconds", float, 1.0, "clip length in seconds")
    >>> option.flag, option.parse("1.5")
    ('--clip-seconds', 1.5)
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    choices: Optional[Tuple[Any, ...]] = None
    command_line: bool = True

    @property
    def flag(self):
        """The command-line flag: `--` and the name with dashes."""
        return "--" + self.name.replace("_", "-")

    def parse(self, text):
        """The option's value from a command-line string (a `ValueError` or
        `argparse.ArgumentTypeError` for a bad one)."""
        return self.type(text)


def floats(text):
    """Comma-separated numbers, e.g. `"0.5,1,2"` -> `(0.5, 1.0, 2.0)`.

    Example:
    >>> floats("0.5,1,2")
    (0.5, 1.0, 2.0)
    """
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None


def defaults(options):
    """`{name: default}` of a table of options.

    Example:
    >>> defaults(KEYWORD_SPOTTING)
    {'clip_seconds': 1.0, 'augment': False, 'skip_corrupt': False, 'calibrate': True}
    """
    return {option.name: option.default for option in options}


_IMAGE_SIZE = Option("image_size", int, None, "square input size (default: the backbone's)")
_SKIP_CORRUPT = Option("skip_corrupt", bool, False, "skip unreadable files with a warning")
_CALIBRATE = Option("calibrate", bool, True, "fit a softmax temperature on the validation data "
                    "after training (temperature scaling; metrics.json records it and the "
                    "calibration error before and after)")

_AUGMENT_IMAGES = Option("augment", bool, False, "random flips, rotation and zoom")
_PREPROCESSING = Option("preprocessing", str, None, "with a keras.Model backbone: what it "
                        "expects of 0-255 RGB pixels ('tf', 'torch', 'caffe' or a Preprocessing)",
                        command_line=False)

IMAGE_CLASSIFICATION = (
    _IMAGE_SIZE,
    _AUGMENT_IMAGES,
    _SKIP_CORRUPT,
    Option("data_dir", str, None, "TensorFlow Datasets folder, for DATA 'tfds:NAME[:SPLIT]'"),
    _PREPROCESSING,
    _CALIBRATE,
    Option("tta", bool, False, "also measure accuracy with test-time augmentation (the mean "
           "over each image and its horizontal flip) on the validation and test data; "
           "metrics.json records it as accuracy_tta"),
)
MULTI_LABEL_IMAGE_CLASSIFICATION = (
    _IMAGE_SIZE,
    _AUGMENT_IMAGES,
    _SKIP_CORRUPT,
    Option("file_column", str, "file", "multi-label CSV column of the image files"),
    Option("labels_column", str, "labels", "multi-label CSV column of each image's labels, "
           "separated by ';' (without it: one 0/1 column per class)"),
    _PREPROCESSING,
    Option("thresholds", bool, True, "choose each class's decision threshold on the validation "
           "data (the F1-best; off: 0.5 for every class); run.json and metrics.json record them"),
)
KEYWORD_SPOTTING = (
    Option("clip_seconds", float, 1.0, "seconds every recording is padded or cropped to"),
    Option("augment", bool, False, "random time shift, background noise and gain"),
    _SKIP_CORRUPT,
    _CALIBRATE,
)
TEXT_CLASSIFICATION = (
    Option("text_column", str, "text", "CSV column of the texts"),
    Option("label_column", str, "label", "CSV column of the labels"),
    Option("sequence_length", int, 128, "tokens kept per text"),
    Option("pooling", str, "mean", "how the encoder's outputs become one vector",
           choices=("mean", "pooled")),
    Option("train_embeddings", bool, False, "let the embeddings train when unfreeze is 'all'"),
    Option("tokenizer", str, None, "with a keras_hub Backbone object: its tokenizer",
           command_line=False),
    _CALIBRATE,
)
OBJECT_DETECTION = (
    Option("image_size", int, None, "square input size, divisible by 32 (default 224)"),
    Option("augment", bool, False, "random flips, zoom/crop and colour jitter (boxes follow)"),
    Option("format", str, None, "annotation layout (default: recognised)",
           choices=("voc", "coco", "yolo")),
    Option("anchor_size", float, None, "smallest anchors are ANCHOR_SIZE * 8 pixels "
           "(default: chosen to fit the training boxes)"),
    Option("aspect_ratios", floats, None, "anchor height/width ratios, e.g. '0.5,1,2' "
           "(default: chosen to fit the training boxes)"),
)
