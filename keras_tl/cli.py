"""`keras-tl` command line: finetune, check, export, predict, serve, backbones.

Example:
    keras-tl check photos/ --output health/photos
    keras-tl finetune photos/ --backbone efficientnet_lite0 --output runs/photos
    keras-tl export runs/photos --name photos
    keras-tl predict saved_models/photos cat.jpg
    keras-tl serve saved_models/photos --port 8501
"""

import argparse
import json
import os
import re
import sys
import threading

from keras_tl.errors import ConfigError, DataError, DataNotFoundError, KerasTLError
from keras_tl.tasks import registry as task_registry

RUN_MODEL_FILE = "model.keras"  # keras_tl.result.MODEL_FILE, named here without importing Keras


def _stage_args(parser):
    group = parser.add_argument_group("stages")
    group.add_argument("--head-epochs", type=int, default=None,
                       help="epochs of stage 1, backbone frozen: exactly this many, also on "
                            "cached features (default: the task's)")
    group.add_argument("--finetune-epochs", type=int, default=None,
                       help="epochs of stage 2, backbone unfrozen; 0 skips it: exactly this "
                            "many (default: the task's)")
    group.add_argument("--head-cached-epochs", type=int, default=None,
                       help="epoch cap of stage 1 when it trains on cached backbone features "
                            "(cheap epochs), early stopping ending it sooner (default: the "
                            "task's, e.g. 50 for images; none once --head-epochs is given)")
    group.add_argument("--finetune-cached-epochs", type=int, default=None,
                       help="the same cap for stage 2 (default: the task's, e.g. 10 for images; "
                            "none once --finetune-epochs is given)")
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


def _data_args(parser, data_help):
    """The arguments of every command that reads training data."""
    _backbone_data_args(parser, data_help)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="AdamW weight decay (needs --optimizer adamw; default 1e-4)")
    _task_option_args(parser)


def _backbone_data_args(parser, data_help):
    """DATA, the task and the backbone that reads it: also `check`'s."""
    parser.add_argument("data", help=data_help)
    parser.add_argument("--task", choices=task_registry.list_tasks(), default=None,
                        help="the task to train (default: recognised from DATA)")
    parser.add_argument("--backbone", default=None,
                        help="registry name, keras_hub preset folder/handle (default: the "
                             "task's offline default)")
    parser.add_argument("--weights", default="default", help="'imagenet', 'none' or a weights file")
    parser.add_argument("--batch-size", type=int, default=32)


def _task_option_args(parser):
    """One flag per task option (`Task.options`), shared by the tasks that
    declare the same name; its help says what it does in each."""
    group = parser.add_argument_group(
        "task options", "each applies to the tasks named in its help (keras_tl.finetune keywords)")
    for name, declarations in _command_line_options().items():
        option = declarations[0][1]
        described = {}  # help text -> tasks, so tasks that agree share one
        for task, declared in declarations:
            default = "" if declared.default in (None, False) else f", default {declared.default}"
            described.setdefault(declared.help + default, []).append(task)
        text = "; ".join(f"{', '.join(tasks)}: {help}" for help, tasks in described.items())
        if option.type is bool:
            group.add_argument(option.flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=None, help=text)
        else:
            group.add_argument(option.flag, dest=name, type=option.parse, default=None,
                               choices=option.choices, help=text,
                               metavar=name.upper() if option.choices is None else None)


def _command_line_options():
    """`{option name: [(task name, Option), ...]}` over every registered
    task, in registry order (the first declaration gives the flag's type)."""
    options = {}
    for task in task_registry.list_tasks():
        for option in task_registry.declared_options(task):
            if option.command_line:
                options.setdefault(option.name, []).append((task, option))
    return options


def build_parser():
    """The argparse parser of `keras-tl`: the task options' flags come
    from each registered task's `options`.

    Example:
    >>> build_parser().parse_args(["finetune", "words/", "--clip-seconds", "1.5"]).clip_seconds
    1.5
    """
    from keras_tl.version import __version__

    parser = argparse.ArgumentParser(prog="keras-tl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"keras-tl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and TensorFlow's own log lines")
    commands = parser.add_subparsers(dest="command", required=True)

    ft = commands.add_parser("finetune", help="fine-tune a pretrained backbone on DATA")
    _data_args(ft, "image folder (one sub-folder per class), CSV file, text or WAV folder, "
                   "VOC/COCO/YOLO detection folder")
    ft.add_argument("--output", default=None, help="run folder (default runs/<time>); reuse it to resume")
    ft.add_argument("--test-data", default=None, help="optional test data, same form as DATA")
    ft.add_argument("--validation-data", default=None,
                    help="validation data, same form as DATA (replaces --validation-split)")
    ft.add_argument("--class-weight", choices=["balanced"], default=None)
    ft.add_argument("--patience", type=int, default=3, help="early-stopping patience (0: off)")
    ft.add_argument("--export", default=None, metavar="NAME",
                    help="export to saved_models/NAME when done")
    ft.add_argument("--dropout", type=float, default=None,
                    help="dropout before the classification layer (default: the task's)")
    ft.add_argument("--verbose", type=int, choices=[0, 1, 2], default=None,
                    help="Keras progress output: 0 silent, 1 bars, 2 one line per epoch "
                         "(default: bars on a terminal, one line per epoch into a file or pipe)")
    training = ft.add_argument_group("training")
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
    _data_args(lr, "the data `keras-tl finetune` would train on")
    lr.add_argument("--output", required=True, help="folder for lr_find.png and lr_find.json")
    lr.add_argument("--stage", choices=["head", "finetune"], default="head",
                    help="sweep the head stage (backbone frozen) or the fine-tuning stage")
    lr.add_argument("--num-steps", type=int, default=100, help="training steps of the sweep")
    lr.add_argument("--start-lr", type=float, default=1e-7)
    lr.add_argument("--end-lr", type=float, default=10.0)

    ck = commands.add_parser("check", help="data health before training: near-duplicates "
                                           "within and across splits, suspect labels, class "
                                           "imbalance, corrupt files")
    _backbone_data_args(ck, "image folder (one sub-folder per class), the training split")
    ck.add_argument("--output", required=True,
                    help="folder for data_health.json and label_issues.png")
    ck.add_argument("--validation-data", default=None, help="validation folder, same form as DATA")
    ck.add_argument("--test-data", default=None, help="test folder, same form as DATA")
    ck.add_argument("--duplicate-threshold", type=float, default=None,
                    help="cosine similarity of backbone features above which files are "
                         "near-duplicates (default: measured, see docs)")
    ck.add_argument("--folds", type=int, default=5,
                    help="cross-validation folds of the label check (fewer when a class is small)")
    ck.add_argument("--seed", type=int, default=0)
    _task_option_args(ck)

    ex = commands.add_parser("export", help="export a finished run for serving (a line per "
                                            "format as it is written and verified, on stderr)")
    ex.add_argument("run_dir", help="output folder of `keras-tl finetune`")
    ex.add_argument("--name", required=True, help="model name: writes saved_models/NAME/<version>")
    ex.add_argument("--root", default="saved_models", help="export root folder (default saved_models)")
    ex.add_argument("--formats", default=None,
                    help="comma-separated: saved_model, onnx, litert (default: every format the task supports)")
    ex.add_argument("--converted", default=None, metavar="GRAPH",
                    help="ONNX and LiteRT: convert another graph the task offers instead of its "
                         "default, e.g. raw_anchors for a detector (every anchor's boxes and "
                         "scores, no NMS)")

    pr = commands.add_parser("predict", help="predictions for images, texts or WAV files from an export")
    pr.add_argument("export_path", help="saved_models/NAME[/VERSION], a .onnx or a .tflite file "
                                        "(.onnx and .tflite run without TensorFlow)")
    pr.add_argument("inputs", nargs="*", help="image or WAV files, or texts for a text model "
                                              "(a file given to a text model is warned about)")
    pr.add_argument("--texts-from", default=None, metavar="FILE",
                    help="text models: predict each line of a .txt file, or each row of the "
                         "'text' column (else the only column) of a .csv file")
    pr.add_argument("--top", type=int, default=3,
                    help="classifiers: how many classes to print per input, most likely first "
                         "(default 3)")
    pr.add_argument("--tta", action="store_true",
                    help="image classifiers: the mean probabilities over each image and its "
                         "horizontal flip (test-time augmentation)")
    pr.add_argument("--draw", default=None, metavar="FOLDER",
                    help="write each image with its predicted boxes into FOLDER (box models)")

    sv = commands.add_parser("serve", help="a local server speaking TensorFlow Serving's REST "
                                           "API for an export, with a page to try it at /")
    sv.add_argument("export_path", help="saved_models/NAME[/VERSION], a .onnx or a .tflite file")
    sv.add_argument("--port", type=int, default=8501, help="port (default 8501, TF Serving's; "
                                                           "0 picks a free one)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--name", default=None,
                    help="model name in the URLs (default: the export's base folder name)")
    sv.add_argument("--format", default=None, choices=("saved_model", "onnx", "litert"),
                    help="format to serve from a folder (default saved_model)")
    sv.add_argument("--max-request-mb", type=float, default=32.0,
                    help="largest request body in MB; larger ones get a 413 (default 32)")

    bb = commands.add_parser("backbones", help="list registered backbones by modality")
    bb.add_argument("--modality", default=None,
                    help="only this modality's backbones (e.g. image, text, audio)")
    return parser


def _stages(args, task):
    """The task's default stages with the command line's overrides: an
    epoch count given is run exactly (the stage's cheap-epoch cap dropped),
    a cap given replaces the stage's."""
    import dataclasses

    from keras_tl.training.stages import gradual_stages

    head, finetune = task.default_stages()
    head = _with_epochs(dataclasses.replace(head, **_given(learning_rate=args.learning_rate)),
                        args.head_epochs, args.head_cached_epochs)
    if args.gradual:
        blocks = [_int_or_str(b) for b in args.gradual.split(",")]
        stages = gradual_stages(blocks, epochs=_first(args.finetune_epochs, finetune.epochs),
                                learning_rate=head.learning_rate, head_epochs=head.epochs,
                                finetune_learning_rate=_first(args.finetune_learning_rate,
                                                              finetune.learning_rate))
        stages[0] = head
    else:
        finetune = dataclasses.replace(finetune, **_given(
            learning_rate=args.finetune_learning_rate,
            unfreeze=None if args.unfreeze is None else _int_or_str(args.unfreeze)))
        finetune = _with_epochs(finetune, args.finetune_epochs, args.finetune_cached_epochs)
        stages = [head, finetune] if finetune.epochs > 0 else [head]
    layer_decay = getattr(args, "layer_decay", None)
    if layer_decay is not None:
        stages = [dataclasses.replace(s, layer_decay=layer_decay) if s.trains_backbone else s
                  for s in stages]
    return stages


def _with_epochs(stage, epochs, cached_epochs):
    import dataclasses

    if epochs is not None:
        stage = dataclasses.replace(stage, epochs=epochs, cached_epochs=None)
    if cached_epochs is not None:
        stage = dataclasses.replace(stage, cached_epochs=cached_epochs)
    return stage


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
    given = {name: getattr(args, name) for name in _command_line_options()
             if getattr(args, name, None) is not None}
    declared = {option.name for option in task.options}
    wrong = sorted(set(given) - declared)
    if wrong:
        tasks = [task_name for task_name, _ in _command_line_options()[wrong[0]]]
        flag = "--" + wrong[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply to {task.name} data ({args.data}); it is an "
                          f"option of {', '.join(tasks)} (--task NAME chooses the task).")
    return given


# -- checks that run before anything heavy is imported ----------------------
def _check_data_paths(args):
    for flag, path in (("DATA", args.data), ("--validation-data", getattr(args, "validation_data", None)),
                       ("--test-data", getattr(args, "test_data", None))):
        if path is not None and not str(path).startswith("tfds:") and not os.path.exists(path):
            what = "Data folder" if flag == "DATA" else f"{flag} folder"
            raise DataNotFoundError(f"{what} not found: {path}")


def _check_writable_folder(flag, path):
    """`path` is a folder, or can be made one: a `ConfigError` saying why not."""
    if path is None:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag} {path} is a file, not a folder; give a folder path "
                          "(a new one, or an earlier run folder to resume).")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{flag} {path}: {existing} is a file, so no folder can be made "
                          "there; choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: no permission to write in {existing}; choose a "
                          "folder you can write to.")


def _check_run_folder(run_dir):
    if not os.path.isdir(run_dir):
        raise DataNotFoundError(f"Run folder not found: {run_dir} (the --output folder of "
                                "`keras-tl finetune`).")
    if not os.path.exists(os.path.join(run_dir, RUN_MODEL_FILE)):
        raise ConfigError(f"{run_dir} holds no {RUN_MODEL_FILE}: it is not the folder of a "
                          "finished `keras-tl finetune` run.")


def _check_export_path(path):
    if os.path.isdir(path) and os.path.exists(os.path.join(path, RUN_MODEL_FILE)):
        raise ConfigError(f"{path} is a run folder, not an export: run `keras-tl export {path} "
                          "--name NAME` first, then `keras-tl predict saved_models/NAME ...`.")
    if not os.path.exists(path):
        raise DataNotFoundError(f"No export at {path}: give saved_models/NAME[/VERSION], a "
                                ".onnx or a .tflite file (`keras-tl export` writes them).")


def _check(args):
    """Checks the arguments and paths of `args.command` (cheap: before the
    heavy imports, so a typo is reported at once)."""
    if args.command in ("finetune", "lr-find", "check"):
        _check_data_paths(args)
        _check_writable_folder("--output", args.output)
        _check_backbone_name(args)
    if args.command == "check":
        _check_health_args(args)
    if args.command == "finetune" and args.export:
        _check_writable_folder("--export", os.path.join("saved_models", args.export))
    if args.command == "export":
        _check_run_folder(args.run_dir)
        _check_writable_folder("--root", args.root)
    if args.command == "predict":
        if args.top < 1:
            raise ConfigError(f"--top {args.top}: print at least 1 class per input.")
        _check_export_path(args.export_path)
        _check_writable_folder("--draw", args.draw)
        if not args.inputs and not args.texts_from:
            raise ConfigError("Nothing to predict: give input files (or texts), or "
                              "--texts-from FILE for a text model.")
        if args.texts_from and not os.path.isfile(args.texts_from):
            raise DataNotFoundError(f"--texts-from {args.texts_from}: no such file.")
    if args.command == "serve":
        _check_serve(args)


def _check_backbone_name(args):
    """A --backbone no loader could take (not registered, no preset, file or
    folder): the registry's "Did you mean" error, the names read without Keras."""
    backbone = getattr(args, "backbone", None)
    if backbone is None:
        return
    from keras_tl.backbones.builder import check_backbone_name

    check_backbone_name(backbone)  # any task: only names no task's loader takes


def _check_health_args(args):
    if args.duplicate_threshold is not None and not 0 < args.duplicate_threshold <= 1:
        raise ConfigError(f"--duplicate-threshold is a cosine similarity in (0, 1]; got "
                          f"{args.duplicate_threshold}.")
    if args.folds < 2:
        raise ConfigError(f"--folds must be at least 2; got {args.folds}.")


def _check_serve(args):
    _check_export_path(args.export_path)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number (0-65535).")
    if args.max_request_mb <= 0:
        raise ConfigError(f"--max-request-mb must be positive; got {args.max_request_mb}.")
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", args.name):
        raise ConfigError(f"--name {args.name!r}: use letters, digits, '_', '-' or '.' (it is "
                          "part of the URL).")
    if args.format and os.path.isfile(args.export_path):
        raise ConfigError("--format picks a file inside an export folder; "
                          f"{args.export_path} is a file already.")


# -- the commands -----------------------------------------------------------
def _finetune(args):
    import keras_tl

    if args.verbose is None:  # progress bars redrawn into a log file are unreadable
        args.verbose = 1 if sys.stdout.isatty() else 2

    task = task_registry.find_task(args.data, args.backbone, args.task)
    task_options = _task_options(args, task)
    weights = None if str(args.weights).lower() == "none" else args.weights
    export = os.path.join("saved_models", args.export) if args.export else None
    if args.verbose:
        print("\n".join(_summary(args, task, task_options)), flush=True)
    result = keras_tl.finetune(
        args.data, backbone=args.backbone, task=task, stages=_stages(args, task),
        output_dir=args.output, weights=weights, batch_size=args.batch_size,
        validation_split=args.validation_split, validation_data=args.validation_data,
        test_data=args.test_data, dropout=args.dropout,
        class_weight=args.class_weight, patience=args.patience, seed=args.seed,
        export=export, verbose=args.verbose, optimizer=args.optimizer,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        precision=args.precision,
        cache_features={"on": True, "off": False}.get(args.cache_features, "auto"),
        distribute=args.distribute, **task_options,
    )
    print(json.dumps({k: v for k, v in result.metrics.items() if v}, indent=2))
    print(f"Run folder: {result.output_dir}")
    if export:
        print(f"Exported to {result.exports.path}")
    return 0


def _summary(args, task, task_options):
    """What `finetune` is about to do, as lines: the task and why, the
    files and classes of a class-folder dataset, the split, the backbone,
    its input size and where its weights come from."""
    from keras_tl.backbones import get_backbone_spec

    why = "--task" if args.task else "recognised from the data"
    lines = [f"Task: {task.name} ({why})"]
    files = task_registry.class_folder_files(args.data) if task.file_extensions else []
    used = [f for f in files if f.lower().endswith(task.file_extensions)]
    if used:
        classes = sorted({f.split(os.sep)[0] for f in used})
        shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
        lines.append(f"Data: {args.data}: {len(used)} files in {len(classes)} classes ({shown})")
    if args.validation_data:
        lines.append(f"Validation: {args.validation_data}")
    elif args.validation_split:
        lines.append(f"Validation: {args.validation_split:.0%} of the training data held out "
                     f"(stratified, seed {args.seed})")
    backbone = args.backbone or task.default_backbone
    try:
        spec = get_backbone_spec(backbone)
    except (KerasTLError, ValueError):  # a keras_hub preset or a model folder
        lines.append(f"Backbone: {backbone}")
        return lines
    size = task_options.get("image_size")
    size = f"{size}x{size}" if size else "x".join(str(v) for v in spec.input_size)
    if str(args.weights).lower() == "none":
        weights = "random initialisation (--weights none)"
    elif args.weights not in ("default", "imagenet"):
        weights = f"weights from {args.weights}"
    else:
        weights = ("weights " + ("on this machine" if spec.available_offline
                                 else "to download on first use") + f" ({spec.source})")
    lines.append(f"Backbone: {spec.name}, input {size}, {weights}")
    return lines


def _lr_find(args):
    from keras_tl.api import find_learning_rate

    task = task_registry.find_task(args.data, args.backbone, args.task)
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


def _data_health(args):
    from keras_tl.check import REPORT_FILE, check_data
    from keras_tl.evaluation.data_health import DUPLICATE_THRESHOLD

    task = task_registry.find_task(args.data, args.backbone, args.task)
    report = check_data(
        args.data, args.backbone, output_dir=args.output, validation_data=args.validation_data,
        test_data=args.test_data, task=task,
        weights=None if str(args.weights).lower() == "none" else args.weights,
        batch_size=args.batch_size, folds=args.folds, seed=args.seed,
        duplicate_threshold=_first(args.duplicate_threshold, DUPLICATE_THRESHOLD),
        **_task_options(args, task))
    copies = sum(len(group) - 1 for group in report["duplicates"])
    print(f"{report['settings']['examples']} files: {len(report['duplicates'])} groups of "
          f"near-duplicates ({copies} extra copies), {len(report['label_issues'])} suspect "
          f"labels, imbalance ratio {report['imbalance_ratio']}, "
          f"{len(report['corrupt_files'])} corrupt files")
    print(f"Report: {os.path.join(args.output, REPORT_FILE)}")
    return 0


def _export(args):
    from keras_tl.exporters import export
    from keras_tl.result import FinetuneResult

    result = FinetuneResult.load(args.run_dir)
    formats = None  # every format the run's task supports
    if args.formats:
        formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    print(f"Exporting {args.run_dir} to {os.path.join(args.root, args.name)}: each format is "
          "written, then verified against the Keras model", file=sys.stderr, flush=True)
    report = export(result, os.path.join(args.root, args.name), formats=formats, verbose=True,
                    converted=args.converted)
    print(report.summary())
    return 0


def _predict(args):
    from keras_tl.exporters.predict import format_prediction, load_export

    exported = load_export(args.export_path)
    inputs = _predict_inputs(args, exported.task.modality)
    predictions = exported.predict(inputs, top=args.top, tta=args.tta)
    for given, prediction in zip(inputs, predictions):
        print(f"{given}: {format_prediction(prediction)}")
    if args.draw:
        _draw(args.inputs, predictions, args.draw)
    return 0


def _serve(args):
    from keras_tl.serving.models import model_name_of, open_model
    from keras_tl.serving.rest import serve
    from keras_tl.serving.warmup import WARMUP_FILE, warmup_file

    served = open_model(args.export_path, format=args.format)  # warm-up file replayed
    name = args.name or model_name_of(args.export_path)
    server = serve(served, name, host=args.host, port=args.port,
                   max_request_bytes=int(args.max_request_mb * 1024 * 1024))
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{host}:{server.port}"
    warmup = (f"{served.warmup_requests} requests of {WARMUP_FILE} replayed "
              f"({served.warmup_seconds:.1f} s)" if warmup_file(served) else
              f"none (no {WARMUP_FILE} beside the model)")
    print(f"Serving {served.path} ({served.format}, version {served.version}) as {name!r}:\n"
          f"  page     {base}/\n"
          f"  predict  POST {base}/v1/models/{name}:predict\n"
          f"  status   GET  {base}/v1/models/{name}   metadata: GET {base}/v1/models/{name}"
          f"/metadata\n  warm-up  {warmup}\n(Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
_MODEL_INPUTS = {"image": ("images", "(.jpg, .png, .bmp, .gif, .webp, .tif)"),
                 "audio": ("WAV files", "(.wav)"), "text": ("texts", "")}


def _predict_inputs(args, modality):
    """The inputs to predict, checked against what the model takes: a file
    given to a text model is warned about (its path is classified); a file
    of the wrong kind given to an image or WAV model is a `DataError`."""
    takes, extensions = _MODEL_INPUTS.get(modality, (modality, ""))
    if args.texts_from and modality != "text":
        raise ConfigError(f"--texts-from is for text models; this model takes {takes}.")
    inputs = list(args.inputs) + (_read_texts(args.texts_from) if args.texts_from else [])
    for given in args.inputs:
        if modality == "text" and os.path.isfile(given):
            print(f"keras-tl predict: warning: {given} is a file; this model takes texts, so "
                  "its path is classified as a text. Pass --texts-from FILE to read one text "
                  "per line from a .txt, or the text column of a .csv.", file=sys.stderr)
        elif modality in ("image", "audio") and os.path.isfile(given) \
                and not _is_kind(given, modality):
            raise DataError(f"This model takes {takes} {extensions}: {given} is not one.")
    return inputs


def _is_kind(path, modality):
    """Whether the file at `path` is an image (Pillow identifies it) or a
    WAV file (RIFF/WAVE header): the header only."""
    if modality == "audio":
        with open(path, "rb") as f:
            header = f.read(12)
        return header[:4] == b"RIFF" and header[8:12] == b"WAVE"
    from PIL import Image

    try:
        with Image.open(path):
            return True
    except Exception:  # noqa: BLE001  (whatever Pillow raises, it is no image it reads)
        return False


def _read_texts(path):
    """The texts of `--texts-from`: the non-empty lines of a text file, or
    the `text` column (else the only column) of a .csv file."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as f:
        if not path.lower().endswith(".csv"):
            return [line.strip() for line in f if line.strip()]
        rows = list(csv.reader(f))
    header, rows = (rows[0], rows[1:]) if rows else ([], [])
    if "text" in header:
        column = header.index("text")
    elif len(header) == 1:
        column = 0
    else:
        raise ConfigError(f"--texts-from {path}: no 'text' column among {header}; name the "
                          "column of texts 'text'.")
    return [row[column] for row in rows if len(row) > column and row[column].strip()]


def _draw(paths, predictions, folder):
    """Writes each image with its predicted boxes into `folder`, titled with
    its file name and detection count."""
    import numpy as np
    from PIL import Image, ImageOps

    from keras_tl.tasks.detection_reports import plot_detections

    if not all(isinstance(p, list) and all(isinstance(d, dict) and "box" in d for d in p)
               for p in predictions):
        raise ConfigError("--draw needs a detector's export (its predictions are boxes).")
    os.makedirs(folder, exist_ok=True)
    for path, prediction in zip(paths, predictions):
        out = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + "_boxes.png")
        # PIL, not TensorFlow: upright as the predicted boxes are (EXIF), and predicting
        # from ONNX/LiteRT needs no TensorFlow
        with Image.open(path) as image:
            pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        plot_detections([pixels], [prediction], out, names=[os.path.basename(path)])
        print(f"wrote {out}")


def _backbones(args):
    """Registered backbones in sections, with input size and weights."""
    from keras_tl.backbones import get_backbone_spec, list_backbones

    modalities = sorted({get_backbone_spec(name).modality for name in list_backbones()})
    if args.modality is not None and args.modality not in modalities:
        raise ConfigError(f"No {args.modality!r} backbones; modalities: {', '.join(modalities)}.")
    for modality in (args.modality,) if args.modality else modalities:
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
        _check(args)
        return _run(args)
    try:
        _check(args)
    except KerasTLError as error:
        print(f"keras-tl {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
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
               "backbones": _backbones, "lr-find": _lr_find, "serve": _serve,
               "check": _data_health}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
