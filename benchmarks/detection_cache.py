"""The detector's head stage (backbone frozen) on the backbone vs on cached
pyramid features, in one run on the same images, settings and seed: seconds
per epoch, what caching costs up front, and the validation mAP after the
stage (the two should agree: the cached stage trains the same weights).

Trains on the first `--train` images of the shipped detection demo set and
validates on the first `--validation` of its test split, at the CLI's
default backbone (offline ImageNet MobileNetV2) and detector settings, with
`--image-size` (the CLI's default is 224) and `--epochs` head epochs, then
writes `benchmarks/results/detection_cache.json`.

    python benchmarks/detection_cache.py [--train 120] [--validation 40] [--epochs 6]
"""

import argparse
import os
import sys
import tempfile
import time

import keras

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from object_detection import BACKBONE, limited_split  # noqa: E402

import keras_tl  # noqa: E402


class EpochTimes(keras.callbacks.Callback):
    """When training began and how long each epoch took (validation
    included), in wall-clock and in this process's CPU seconds (what the
    machine's other jobs change least)."""

    def on_train_begin(self, logs=None):
        self.train_begin, self.epochs, self.cpu_epochs = time.perf_counter(), [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begin, self.cpu_begin = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self.epoch_begin)
        self.cpu_epochs.append(time.process_time() - self.cpu_begin)


def head_stage(train, validation, cache_features, args, output_dir):
    """One head stage of `args.epochs` epochs, cached or not: a dict of timings and mAP."""
    times = EpochTimes()
    start = time.perf_counter()
    result = keras_tl.finetune(
        train, BACKBONE, validation_data=validation, image_size=args.image_size,
        batch_size=args.batch_size, seed=args.seed, patience=0, verbose=0,
        stages=[keras_tl.Stage("head", epochs=args.epochs, learning_rate=1e-4)],
        cache_features=cache_features, callbacks=[times], output_dir=output_dir)
    validation_metrics = result.metrics["validation"]
    return dict(
        seconds_per_epoch=_steady_mean(times.epochs),
        cpu_seconds_per_epoch=_steady_mean(times.cpu_epochs),
        epoch_seconds=[round(t, 2) for t in times.epochs],
        epoch_cpu_seconds=[round(t, 2) for t in times.cpu_epochs],
        # reading the data and building the model, plus, cached, computing the features
        seconds_before_first_epoch=round(times.train_begin - start, 2),
        head_stage_seconds=round(times.train_begin - start + sum(times.epochs), 2),
        validation_map=round(validation_metrics["map"], 4),
        validation_map_50=round(validation_metrics["map_50"], 4),
        validation_loss=[round(v, 4) for v in result.histories["head"]["val_loss"]],
        loss=[round(v, 4) for v in result.histories["head"]["loss"]])


def backbone_forward(train, validation, args):
    """Seconds (wall, CPU) the frozen backbone's forward pass takes over the
    training and validation images once: what a head epoch on cached
    features saves."""
    from keras_tl.freezing import freeze_backbone
    from keras_tl.tasks import get_task
    from keras_tl.training.cache import backend_batches, feature_function

    task = get_task("object_detection")
    prepared = task.prepare(train, BACKBONE, validation_data=validation,
                            image_size=args.image_size, batch_size=args.batch_size)
    features = task.split_head(freeze_backbone(prepared.model))[0]
    predict = feature_function(features, prepared.train)
    predict(next(iter(backend_batches(prepared.train)))[0])  # traced
    start, cpu = time.perf_counter(), time.process_time()
    for part in (prepared.train, prepared.validation):
        for images, _ in backend_batches(part):
            predict(images)
    return dict(seconds=round(time.perf_counter() - start, 2),
                cpu_seconds=round(time.process_time() - cpu, 2))


def _steady_mean(seconds):
    steady = seconds[1:] or seconds  # the first epoch also traces the training step
    return round(sum(steady) / len(steady), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=120, help="training images of the demo")
    parser.add_argument("--validation", type=int, default=40, help="its test images validated on")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/detection_cache.json")
    args = parser.parse_args()
    from _results import write_results  # benchmarks/ is the script's folder

    with tempfile.TemporaryDirectory() as folder:
        train = limited_split("train", args.train, folder)
        validation = limited_split("test", args.validation, folder)
        runs = {name: head_stage(train, validation, cache, args, os.path.join(folder, name))
                for name, cache in (("backbone", False), ("cached", True))}
        forward = backbone_forward(train, validation, args)
    plain, cached = runs["backbone"], runs["cached"]
    summary = dict(
        epoch_speedup=round(plain["seconds_per_epoch"] / cached["seconds_per_epoch"], 2),
        epoch_cpu_speedup=round(plain["cpu_seconds_per_epoch"]
                                / cached["cpu_seconds_per_epoch"], 2),
        head_stage_speedup=round(plain["head_stage_seconds"] / cached["head_stage_seconds"], 2),
        seconds_per_epoch={name: run["seconds_per_epoch"] for name, run in runs.items()},
        feature_cache_seconds=round(cached["seconds_before_first_epoch"]
                                    - plain["seconds_before_first_epoch"], 2),
        validation_map={name: run["validation_map"] for name, run in runs.items()},
        # the part of an epoch caching can save
        backbone_forward_cpu_seconds_per_epoch=forward["cpu_seconds"])
    settings = dict(vars(args), backbone=BACKBONE, data="keras_tl detection demo (COCO, 128 px "
                    "photos resized to the input size)", stage="head: backbone frozen, Adam 1e-4",
                    cache_memory=os.environ.get("KERAS_TL_CACHE_MEMORY", "default"))
    write_results(args.out, summary, settings=settings, runs=runs, backbone_forward=forward)


if __name__ == "__main__":
    main()
