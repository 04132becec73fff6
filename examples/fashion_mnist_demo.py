"""What transfer learning buys: Fashion-MNIST with 100 images per class.

Fine-tunes an ImageNet-pretrained backbone (offline weights) two-stage, and
compares test accuracy with a frozen-backbone (head-only) run and a
from-scratch run of the same architecture and epoch budget.

    python examples/fashion_mnist_demo.py                # full demo, < 10 min on 2 cores
    python examples/fashion_mnist_demo.py --train-per-class 10 --epochs 1   # smoke run
"""

import argparse
import json
import os
import time

import keras_tl
from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample
from keras_tl.reports import machine_info

# A plain run (`make demo` for images) writes here; the README's numbers come from a run with
# --results benchmarks/results/fashion_mnist_demo.json
RESULTS = os.path.join("runs", "fashion_mnist_demo", "results.json")


def run(name, data, test, output, stages, **options):
    """One `keras_tl.finetune` call; returns (result, test accuracy, seconds)."""
    start = time.time()
    result = keras_tl.finetune(
        data, test_data=test, stages=stages, output_dir=os.path.join(output, name), **options)
    return result, result.metrics["test"]["accuracy"], time.time() - start


def scratch_backbone(name, image_size):
    """The same architecture with random weights. Its BatchNorm momentum is
    0.9 instead of 0.99, so the moving statistics catch up within a few
    hundred steps (with 0.99 the from-scratch model scores chance on
    held-out data after 8 short epochs, whatever it learnt)."""
    import keras

    keras.utils.set_random_seed(0)  # the random init is part of the run: repeatable
    loaded = keras_tl.load_backbone(name, weights=None, image_size=image_size)
    for layer in loaded.model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return loaded


def compare(backbone=keras_tl.tasks.get_task("image_classification").default_backbone, train_per_class=100,
            test_per_class=100, image_size=96, head_epochs=3, finetune_epochs=5,
            output="runs/fashion_mnist_demo", verbose=2,
            runs=("two_stage", "frozen_head_only", "from_scratch"), seed=0):
    """Runs the configurations named in `runs`; returns a dict of their results.

    Example:
    >>> compare(train_per_class=10, head_epochs=1, finetune_epochs=1)["two_stage"]
    """
    (x, y), (x_test, y_test), names = load_fashion_mnist_sample(train_per_class, test_per_class)
    common = dict(backbone=backbone, image_size=image_size, class_names=names,
                  batch_size=32, validation_split=0.1, seed=seed, verbose=verbose,
                  patience=3)
    epochs = head_epochs + finetune_epochs
    configs = {
        "two_stage": lambda: (keras_tl.default_stages(head_epochs, finetune_epochs), backbone),
        "frozen_head_only": lambda: ([keras_tl.Stage("head", epochs=epochs)], backbone),
        "from_scratch": lambda: (
            [keras_tl.Stage("scratch", unfreeze="all", epochs=epochs, learning_rate=1e-3,
                            train_batchnorm=True)],
            scratch_backbone(backbone, image_size)),
    }
    results = {}
    for name in runs:
        stages, model = configs[name]()
        result, accuracy, seconds = run(name, (x, y), (x_test, y_test), output,
                                        stages, **dict(common, backbone=model))
        results[name] = dict(test_accuracy=round(accuracy, 4), seconds=round(seconds, 1))
        print(f"== {name}: test accuracy {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    results["setup"] = dict(
        backbone=backbone if isinstance(backbone, str) else backbone.spec.name,
        train_images=int(len(y)), test_images=int(len(y_test)), image_size=image_size,
        epochs=epochs, head_epochs=head_epochs, finetune_epochs=finetune_epochs,
        batch_size=32, validation_split=0.1, patience=3, seed=seed,
        stages={name: [s.to_config() for s in configs[name]()[0]] for name in runs})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=keras_tl.tasks.get_task("image_classification").default_backbone)
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="sets both epoch counts")
    parser.add_argument("--output", default="runs/fashion_mnist_demo")
    parser.add_argument("--results", default=RESULTS, help="where the results JSON goes")
    args = parser.parse_args()
    if args.epochs is not None:
        args.head_epochs = args.finetune_epochs = args.epochs
    start = time.time()
    results = compare(args.backbone, args.train_per_class, args.test_per_class,
                      args.image_size, args.head_epochs, args.finetune_epochs, args.output)
    results["setup"]["wall_seconds"] = round(time.time() - start, 1)
    results["machine"] = dict(machine_info(), note="shared machine; times are indicative")
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    print("\nFashion-MNIST, {train_images} training images, {test_images} test images, "
          "{image_size}px, backbone {backbone}:".format(**results["setup"]))
    for name in ("two_stage", "frozen_head_only", "from_scratch"):
        print(f"  {name:<18} test accuracy {results[name]['test_accuracy']:.4f}"
              f"  ({results[name]['seconds']:.0f} s)")
    print(f"Total wall time {results['setup']['wall_seconds']:.0f} s; results in {args.results}")


if __name__ == "__main__":
    main()
