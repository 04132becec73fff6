"""Speed benchmarks, measured side by side in one process; numbers go to a file.

    python benchmarks/run.py [--sizes 96 224] [--repeats 3] [--out benchmarks/results/speed.json]

For each offline backbone and input size: images per second of inference,
of a training step with the backbone frozen (stage 1) and unfrozen (stage 2).
The machine is shared and noisy, so each number is the best of `--repeats`
runs, and the ratios (frozen vs unfrozen, backbone vs backbone) are what to
read, not the absolute values.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

import keras_tl
from keras_tl.tasks.image_classifier import build_image_classifier

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "mobilenet_v2_torch")


def _best(fn, repeats):
    fn()  # warm-up: tracing and compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name, size, batch=32, steps=4, repeats=3):
    """Images/second for predict, frozen training and unfrozen training."""
    import keras

    model = build_image_classifier(keras_tl.load_backbone(name, image_size=size), 10)
    x = np.random.default_rng(0).uniform(0, 255, (batch * steps, size, size, 3)).astype("float32")
    y = np.arange(len(x)) % 10
    n = len(x)
    row = {"backbone": name, "image_size": size, "batch": batch}
    row["predict_img_s"] = n / _best(lambda: model.predict(x, batch_size=batch, verbose=0), repeats)
    for label, unfreeze in (("frozen", None), ("unfrozen", "all")):
        if unfreeze is None:
            keras_tl.freeze_backbone(model)
        else:
            keras_tl.unfreeze_backbone(model, unfreeze)
        model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
        row[f"train_{label}_img_s"] = n / _best(
            lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0), repeats)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/speed.json")
    args = parser.parse_args()
    import keras

    rows = []
    for size in args.sizes:
        for name in args.backbones:
            rows.append(measure(name, size, repeats=args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    report = dict(
        backend=keras.backend.backend(), keras=keras.__version__,
        keras_tl=keras_tl.__version__, machine=platform.processor() or platform.machine(),
        cpus=os.cpu_count(), date=time.strftime("%Y-%m-%d %H:%M"), rows=rows)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
