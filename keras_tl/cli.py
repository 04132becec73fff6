"""`keras-tl` command line: finetune, export, predict, backbones.

Example:
    keras-tl finetune photos/ --backbone efficientnet_lite0 --output runs/photos
    keras-tl export runs/photos --name photos
    keras-tl predict saved_models/photos cat.jpg
"""

import argparse
import json
import os
import re
import sys
import threading

from keras_tl.errors import ConfigError, KerasTLError


def _stage_args(parser):
    group = parser.add_argument_group("stages")
    group.add_argument("--head-epochs", type=int, default=None,
                       help="epochs of stage 1, backbone frozen (default: the task's)")
    group.add_argument("--finetune-epochs", type=int, default=None,
                       help="epochs of stage 2, backbone unfrozen; 0 skips it (default: the task's)")
    group.add_argument("--learning-rate", type=_rate, default=None,
                       help="stage 1 learning rate, or 'auto' (the learning-rate finder's "
                            "suggestion; default: the task's)")
    group.add_argument("--finetune-learning-rate", type=_rate, default=None,
                       help="stage 2 learning rate, or 'auto' (default: the task's)")
    group.add_argument("--layer-decay", type=float, default=None,
                       help="layer-wise rates in the stages that train the backbone: each "
                            "block's rate times DECAY^(distance from the top), e.g. 0.8")
    group.add_argument("--unfreeze", default=None,
                       help="what stage 2 unfreezes: 'all', N top layers, or a layer/block name")
    group.add_argument("--gradual", default=None,
                       help="gradual unfreezing, comma-separated, e.g. '20,60,all' (replaces stage 2)")


def build_parser():
    """The argparse parser of `keras-tl`.

    Example:
    >>> build_parser().parse_args(["finetune", "data/"]).backbone
    """
    from keras_tl.version import __version__

    parser = argparse.ArgumentParser(prog="keras-tl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"keras-tl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's own log lines")
    commands = parser.add_subparsers(dest="command", required=True)

    ft = commands.add_parser("finetune", help="fine-tune a pretrained backbone on DATA")
    ft.add_argument("data", help="image folder (one sub-folder per class), CSV file or text folder")
    ft.add_argument("--backbone", default=None,
                    help="registry name, keras_hub preset folder/handle (default: offline ImageNet/MiniLM default)")
    ft.add_argument("--output", default=None, help="run folder (default runs/<time>); reuse it to resume")
    ft.add_argument("--weights", default="default", help="'imagenet', 'none' or a weights file")
    ft.add_argument("--image-size", type=int, default=None, help="square input size (default: the backbone's)")
    ft.add_argument("--batch-size", type=int, default=32)
    ft.add_argument("--validation-split", type=float, default=0.2)
    ft.add_argument("--test-data", default=None, help="optional test data, same form as DATA")
    ft.add_argument("--format", choices=["voc", "coco", "yolo"], default=None,
                    help="annotation layout of detection data (default: recognised)")
    ft.add_argument("--augment", action="store_true", help="random flips, rotation and zoom")
    ft.add_argument("--class-weight", choices=["balanced"], default=None)
    ft.add_argument("--patience", type=int, default=3, help="early-stopping patience (0: off)")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images with a warning")
    ft.add_argument("--export", default=None, metavar="NAME",
                    help="export to saved_models/NAME when done")
    text = ft.add_argument_group("text data")
    text.add_argument("--text-column", default=None, help="CSV column of the texts (default 'text')")
    text.add_argument("--label-column", default=None, help="CSV column of the labels (default 'label')")
    text.add_argument("--sequence-length", type=int, default=None, help="tokens per text (default 128)")
    ft.add_argument("--validation-data", default=None,
                    help="validation data, same form as DATA (replaces --validation-split)")
    ft.add_argument("--dropout", type=float, default=None,
                    help="dropout before the classification layer (default: the task's)")
    ft.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                    help="Keras progress output: 0 silent, 1 bars, 2 one line per epoch")
    training = ft.add_argument_group("training")
    training.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    training.add_argument("--weight-decay", type=float, default=None,
                          help="AdamW weight decay (needs --optimizer adamw; default 1e-4)")
    training.add_argument("--label-smoothing", type=float, default=0.0)
    training.add_argument("--cache-features", choices=["auto", "on", "off"], default="auto",
                          help="train a frozen-backbone stage on backbone features computed "
                               "once (auto: when there is no augmentation)")
    training.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16"],
                          default=None, help="mixed precision (the output layer stays float32)")
    training.add_argument("--distribute", choices=["auto", "data_parallel", "multi_worker"], default=None,
                          help="data-parallel over this machine's devices (JAX, TensorFlow); "
                               "--batch-size is the global batch")
    _stage_args(ft)

    lr = commands.add_parser("lr-find", help="learning-rate finder: plot loss against rate, "
                                             "print the suggested rate")
    lr.add_argument("data", help="the data `keras-tl finetune` would train on")
    lr.add_argument("--output", required=True, help="folder for lr_find.png and lr_find.json")
    lr.add_argument("--backbone", default=None)
    lr.add_argument("--weights", default="default", help="'imagenet', 'none' or a weights file")
    lr.add_argument("--image-size", type=int, default=None)
    lr.add_argument("--batch-size", type=int, default=32)
    lr.add_argument("--validation-split", type=float, default=0.2)
    lr.add_argument("--augment", action="store_true")
    lr.add_argument("--seed", type=int, default=0)
    lr.add_argument("--stage", choices=["head", "finetune"], default="head",
                    help="sweep the head stage (backbone frozen) or the fine-tuning stage")
    lr.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    lr.add_argument("--weight-decay", type=float, default=None)
    lr.add_argument("--num-steps", type=int, default=100, help="training steps of the sweep")
    lr.add_argument("--start-lr", type=float, default=1e-7)
    lr.add_argument("--end-lr", type=float, default=10.0)
    lr_text = lr.add_argument_group("text data")
    lr_text.add_argument("--text-column", default=None)
    lr_text.add_argument("--label-column", default=None)
    lr_text.add_argument("--sequence-length", type=int, default=None)

    ex = commands.add_parser("export", help="export a finished run for serving")
    ex.add_argument("run_dir", help="output folder of `keras-tl finetune`")
    ex.add_argument("--name", required=True, help="model name: writes saved_models/NAME/<version>")
    ex.add_argument("--root", default="saved_models", help="export root folder (default saved_models)")
    ex.add_argument("--formats", default=None,
                    help="comma-separated: saved_model, onnx, litert (default: every format the task supports)")

    pr = commands.add_parser("predict", help="top classes of images (or texts) from an export")
    pr.add_argument("export_path", help="saved_models/NAME[/VERSION], a .onnx or a .tflite file")
    pr.add_argument("inputs", nargs="+", help="image files (or texts, for a text model)")
    pr.add_argument("--top", type=int, default=3)
    pr.add_argument("--draw", default=None, metavar="FOLDER",
                    help="detectors: write each image with its boxes drawn into FOLDER")

    bb = commands.add_parser("backbones", help="list registered backbones by modality")
    bb.add_argument("--modality", choices=["image", "text", "audio"], default=None)
    return parser


def _stages(args, task):
    """The task's default stages with the command line's overrides."""
    import dataclasses

    from keras_tl.training.stages import gradual_stages

    head, finetune = task.default_stages()
    head = dataclasses.replace(head, **_given(epochs=args.head_epochs,
                                              learning_rate=args.learning_rate))
    if args.gradual:
        blocks = [_int_or_str(b) for b in args.gradual.split(",")]
        stages = gradual_stages(blocks, epochs=_first(args.finetune_epochs, finetune.epochs),
                                learning_rate=head.learning_rate, head_epochs=head.epochs,
                                finetune_learning_rate=_first(args.finetune_learning_rate,
                                                              finetune.learning_rate))
    else:
        finetune = dataclasses.replace(finetune, **_given(
            epochs=args.finetune_epochs, learning_rate=args.finetune_learning_rate,
            unfreeze=None if args.unfreeze is None else _int_or_str(args.unfreeze)))
        stages = [head, finetune] if finetune.epochs > 0 else [head]
    layer_decay = getattr(args, "layer_decay", None)
    if layer_decay is not None:
        stages = [dataclasses.replace(s, layer_decay=layer_decay) if s.trains_backbone else s
                  for s in stages]
    return stages


def _given(**values):
    return {k: v for k, v in values.items() if v is not None}


def _first(value, default):
    return default if value is None else value


def _int_or_str(value):
    return int(value) if str(value).isdigit() else value


def _rate(value):
    """A learning rate from the command line: a number or 'auto'."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {value!r}") from None


def _task_options(args, task):
    """The task options the command line gives, checked against the task."""
    given = dict(
        text_column=args.text_column, label_column=args.label_column,
        sequence_length=args.sequence_length, image_size=args.image_size,
        augment=args.augment or None, skip_corrupt=getattr(args, "skip_corrupt", None) or None,
        format=getattr(args, "format", None),
    )
    task_options = {k: v for k, v in given.items() if v is not None}
    wrong = sorted(set(task_options) - set(task.options))
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply to {task.name} data ({args.data}).")
    return task_options


def _finetune(args):
    import keras_tl
    from keras_tl.tasks import find_task

    task = find_task(args.data, args.backbone)
    task_options = _task_options(args, task)
    weights = None if str(args.weights).lower() == "none" else args.weights
    result = keras_tl.finetune(
        args.data, backbone=args.backbone, task=task, stages=_stages(args, task),
        output_dir=args.output, weights=weights, batch_size=args.batch_size,
        validation_split=args.validation_split, validation_data=args.validation_data,
        test_data=args.test_data, dropout=args.dropout,
        class_weight=args.class_weight, patience=args.patience, seed=args.seed,
        export=os.path.join("saved_models", args.export) if args.export else None,
        verbose=args.verbose, optimizer=args.optimizer, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, precision=args.precision,
        cache_features={"on": True, "off": False}.get(args.cache_features, "auto"),
        distribute=args.distribute, **task_options,
    )
    print(json.dumps({k: v for k, v in result.metrics.items() if v}, indent=2))
    print(f"Run folder: {result.output_dir}")
    return 0


def _lr_find(args):
    from keras_tl.tasks import find_task
    from keras_tl.api import find_learning_rate

    task = find_task(args.data, args.backbone)
    stages = task.default_stages()
    stage = stages[0] if args.stage == "head" else stages[-1]
    result = find_learning_rate(
        args.data, args.backbone, task=task, stage=stage, output_dir=args.output,
        weights=None if str(args.weights).lower() == "none" else args.weights,
        batch_size=args.batch_size, validation_split=args.validation_split, seed=args.seed,
        start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.num_steps,
        optimizer=args.optimizer, weight_decay=args.weight_decay, verbose=True,
        **_task_options(args, task))
    print(f"steep: {result.steep:.3g}, minimum/10: {result.minimum:.3g}")
    print(f"Plot: {os.path.join(args.output, 'lr_find.png')}")
    return 0


def _export(args):
    from keras_tl.exporters import export
    from keras_tl.result import FinetuneResult

    result = FinetuneResult.load(args.run_dir)
    formats = None  # every format the run's task supports
    if args.formats:
        formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    report = export(result, os.path.join(args.root, args.name), formats=formats)
    print(report.summary())
    return 0


def _predict(args):
    from keras_tl.exporters.predict import format_prediction, load_export

    exported = load_export(args.export_path)
    predictions = exported.predict(args.inputs, top=args.top)
    for given, prediction in zip(args.inputs, predictions):
        print(f"{given}: {format_prediction(prediction)}")
    if args.draw:
        _draw(args.inputs, predictions, args.draw)
    return 0


def _draw(paths, predictions, folder):
    """Writes each image with its predicted boxes into `folder`."""
    from keras_tl.data.images import read_image
    from keras_tl.errors import ConfigError
    from keras_tl.reports import plot_detections

    if not all(isinstance(p, list) and all(isinstance(d, dict) and "box" in d for d in p)
               for p in predictions):
        raise ConfigError("--draw needs a detector's export (its predictions are boxes).")
    os.makedirs(folder, exist_ok=True)
    for path, prediction in zip(paths, predictions):
        out = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + "_boxes.png")
        plot_detections(read_image(path)[None], [prediction], [], out)
        print(f"wrote {out}")


def _backbones(args):
    """Registered backbones in sections, with input size and weights."""
    from keras_tl.backbones import get_backbone_spec, list_backbones

    for modality in (args.modality,) if args.modality else ("image", "text", "audio"):
        print(f"{modality} backbones:")
        for name in list_backbones(modality):
            spec = get_backbone_spec(name)
            size = "x".join(str(v) for v in spec.input_size)
            weights = ("weights on this machine" if spec.available_offline
                       else f"weights download on first use ({spec.source})")
            print(f"  {name:<24} input {size:<9} {weights}")
        if modality == "text":
            print("  + any keras_hub text preset (downloads on first use), a local "
                  "keras_hub preset or Hugging Face model folder")
    return 0


# Lines TensorFlow and XLA write from C++ straight to file descriptor 2,
# before Python logging is configured.
_NATIVE_LOG = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|INFO: Created TensorFlow Lite|[IWEF]\d{4} [\d:. ]+ *\d+ [\w.]+:\d+\])")


class _NativeLogFilter:
    """Drops TensorFlow's native log lines from stderr (kept with --debug)."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, args=(read_end, os.dup(self.saved)),
                                       daemon=True)
        self.thread.start()
        return self

    @staticmethod
    def _pump(read_end, out_fd):
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(out_fd, "wb", buffering=0) as out:
            for line in pipe:
                if not _NATIVE_LOG.match(line):
                    out.write(line)

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's last writer: the pump drains and ends
        os.close(self.saved)
        self.thread.join(timeout=5)


def _quiet_python_logs():
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", module="keras")


def main(argv=None):
    """Entry point of the `keras-tl` command. Errors keras_tl raises on
    purpose print one line and exit 2 (the traceback with `--debug`).

    Example:
    >>> main(["backbones", "--modality", "audio"])  # doctest: +ELLIPSIS
    audio backbones:
      speech_embedding         input 16000     weights ...
    0
    """
    args = build_parser().parse_args(argv)
    if args.debug:
        return _run(args)
    _quiet_python_logs()
    with _NativeLogFilter():
        try:
            return _run(args)
        except KerasTLError as error:
            print(f"keras-tl {args.command}: error: {_one_line(error)}", file=sys.stderr)
            return 2
        except (ValueError, OSError, TypeError) as error:
            print(f"keras-tl {args.command}: error: {type(error).__name__}: {_one_line(error)} "
                  "(--debug shows the traceback)", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if args.command == "finetune":
                print("\nInterrupted. Every finished epoch is saved: run the same command "
                      "again (same --output) to resume.", file=sys.stderr)
            return 130


def _one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 2000 else text[:2000] + "..."


def _run(args):
    handler = {"finetune": _finetune, "export": _export, "predict": _predict,
               "backbones": _backbones, "lr-find": _lr_find}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
