"""Which Adam learning rate a new RetinaNet head takes: the detector's head
stage (backbone frozen) at several rates on the same images and seed.

Trains the head of keras_tl's detector (offline ImageNet MobileNetV2,
128 px) on the first 40 training images of the shipped detection demo set
for 12 epochs (60 steps) per rate, from the same initial weights, and
writes the classification and box losses of every epoch to
`benchmarks/results/detection_head_rate.json`.

    python benchmarks/detection_head_rate.py
"""

import argparse
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from object_detection import BACKBONE, limited_split  # noqa: E402

from keras_tl.models.retinanet import detector_backbone  # noqa: E402
from keras_tl.reports import machine_info  # noqa: E402
from keras_tl.tasks import get_task  # noqa: E402


def head_losses(train, learning_rate, epochs, image_size, seed):
    """Per-epoch training losses of the head stage at `learning_rate`."""
    keras.utils.set_random_seed(seed)
    prepared = get_task("object_detection").prepare(
        train, BACKBONE, image_size=image_size, validation_split=0, batch_size=8, seed=seed)
    detector = prepared.model
    detector_backbone(detector).trainable = False
    detector.compile(optimizer=keras.optimizers.Adam(learning_rate))
    start = time.time()
    history = detector.fit(prepared.train, epochs=epochs, verbose=0).history
    return dict(classification_loss=[round(v, 4) for v in history["cls_logits_loss"]],
                box_loss=[round(v, 5) for v in history["bbox_regression_loss"]],
                seconds=round(time.time() - start, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-3, 3e-4, 1e-4])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/detection_head_rate.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        train = limited_split("train", args.images, folder)
        runs = {str(rate): head_losses(train, rate, args.epochs, args.image_size, args.seed)
                for rate in args.rates}
    for rate, run in runs.items():
        print(f"Adam {rate}: classification loss by epoch {run['classification_loss']}")
    report = dict(
        setup=dict(backbone=BACKBONE, detector="RetinaNet (keras_tl.models.retinanet)",
                   stage="head (backbone frozen)", optimizer="Adam", images=args.images,
                   batch_size=8, epochs=args.epochs, steps=args.epochs * -(-args.images // 8),
                   image_size=args.image_size, seed=args.seed),
        runs=runs, machine=dict(machine_info(), note="shared machine; times are indicative"))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"results in {args.out}")
    return report


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
