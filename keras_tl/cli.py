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
    group.add_argument("--learning-rate", type=float, default=None,
                       help="stage 1 learning rate (default: the task's)")
    group.add_argument("--finetune-learning-rate", type=float, default=None,
                       help="stage 2 learning rate (default: the task's)")
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
    _stage_args(ft)

    ex = commands.add_parser("export", help="export a finished run for serving")
    ex.add_argument("run_dir", help="output folder of `keras-tl finetune`")
    ex.add_argument("--name", required=True, help="model name: writes saved_models/NAME/<version>")
    ex.add_argument("--root", default="saved_models", help="export root folder (default saved_models)")
    ex.add_argument("--formats", default="saved_model,onnx,litert",
                    help="comma-separated: saved_model, onnx, litert")

    pr = commands.add_parser("predict", help="top classes of images (or texts) from an export")
    pr.add_argument("export_path", help="saved_models/NAME[/VERSION], a .onnx or a .tflite file")
    pr.add_argument("inputs", nargs="+", help="image files (or texts, for a text model)")
    pr.add_argument("--top", type=int, default=3)

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
        return gradual_stages(blocks, epochs=_first(args.finetune_epochs, finetune.epochs),
                              learning_rate=head.learning_rate, head_epochs=head.epochs,
                              finetune_learning_rate=_first(args.finetune_learning_rate,
                                                            finetune.learning_rate))
    finetune = dataclasses.replace(finetune, **_given(
        epochs=args.finetune_epochs, learning_rate=args.finetune_learning_rate,
        unfreeze=None if args.unfreeze is None else _int_or_str(args.unfreeze)))
    return [head, finetune] if finetune.epochs > 0 else [head]


def _given(**values):
    return {k: v for k, v in values.items() if v is not None}


def _first(value, default):
    return default if value is None else value


def _int_or_str(value):
    return int(value) if str(value).isdigit() else value


def _finetune(args):
    import keras_tl
    from keras_tl.tasks import find_task

    task = find_task(args.data, args.backbone)
    given = dict(
        text_column=args.text_column, label_column=args.label_column,
        sequence_length=args.sequence_length, image_size=args.image_size,
        augment=args.augment or None, skip_corrupt=args.skip_corrupt or None,
    )
    task_options = {k: v for k, v in given.items() if v is not None}
    wrong = sorted(set(task_options) - set(task.options))
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply to {task.name} data ({args.data}).")
    weights = None if str(args.weights).lower() == "none" else args.weights
    result = keras_tl.finetune(
        args.data, backbone=args.backbone, task=task, stages=_stages(args, task),
        output_dir=args.output, weights=weights, batch_size=args.batch_size,
        validation_split=args.validation_split, test_data=args.test_data,
        class_weight=args.class_weight, patience=args.patience, seed=args.seed,
        export=os.path.join("saved_models", args.export) if args.export else None,
        verbose=1, **task_options,
    )
    print(json.dumps({k: v for k, v in result.metrics.items() if v}, indent=2))
    print(f"Run folder: {result.output_dir}")
    return 0


def _export(args):
    from keras_tl.exporters import export
    from keras_tl.result import FinetuneResult

    result = FinetuneResult.load(args.run_dir)
    formats = None  # every format the run's task supports
    if args.formats and args.formats != "saved_model,onnx,litert":  # the parser's default
        formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    report = export(result, os.path.join(args.root, args.name), formats=formats)
    print(report.summary())
    return 0


def _predict(args):
    from keras_tl.exporters.predict import format_prediction, load_export

    exported = load_export(args.export_path)
    for given, prediction in zip(args.inputs, exported.predict(args.inputs, top=args.top)):
        print(f"{given}: {format_prediction(prediction)}")
    return 0


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
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} [\d:. ]+ *\d+ [\w.]+:\d+\])")


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
               "backbones": _backbones}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
