"""How closely each exported format follows the Keras model on real data.

Exports a finished run (by default the demo's two-stage Fashion-MNIST model)
with the whole Fashion-MNIST test sample as verification inputs, and writes
each format's report (max differences, argmax agreements, int8 LiteRT
included, file sizes) to a JSON file.

    python benchmarks/export_fidelity.py [--run runs/fashion_mnist_demo/two_stage]
"""

import argparse
import json
import os
import tempfile

import numpy as np

import keras_tl
from keras_tl.reports import machine_info
from keras_tl.data.images import prepare_images
from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/fashion_mnist_demo/two_stage")
    parser.add_argument("--out", default="benchmarks/results/export_fidelity.json")
    args = parser.parse_args()
    result = keras_tl.FinetuneResult.load(args.run)
    _, (x_test, y_test), _ = load_fashion_mnist_sample()
    images = prepare_images(x_test, tuple(result.info["input_size"])).astype("float32")
    keras_accuracy = float(np.mean(
        result.model.predict(images, verbose=0).argmax(axis=1) == y_test))
    with tempfile.TemporaryDirectory() as folder:
        exported = keras_tl.export(result, os.path.join(folder, "fashion"),
                                   verification_inputs=images)
        verification = exported.verification
    report = dict(run=args.run, backbone=result.info["backbone"],
                  weights=result.info.get("weights"), input_size=result.info["input_size"],
                  task=result.info["task"], formats=sorted(exported.files),
                  test_images=int(len(images)), keras_test_accuracy=round(keras_accuracy, 4),
                  verification=verification,
                  machine=dict(machine_info(), note="shared machine"))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
