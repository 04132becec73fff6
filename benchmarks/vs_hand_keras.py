"""keras_tl's default run against the same job written by hand in Keras
(`benchmarks/hand_keras.py`), and cached against uncached warm-up.

    python benchmarks/vs_hand_keras.py [--pairs 2] [--skip-warmup] [--skip-hand]

Each run is a fresh process; the two sides alternate (hand first in odd
pairs, keras_tl first in even ones) so drift on a shared machine hits both.
Wall time is measured inside the process from loading the data to the
evaluated model (imports excluded); keras_tl's includes writing its run
folder (model, reports).

Writes `benchmarks/results/vs_hand_keras.json` (per-pair wall-time ratio
keras_tl / hand, their median, both test accuracies, settings, machine) and
`benchmarks/results/cached_warmup.json` (the same head stage with and
without cached features: stage time ratio and validation accuracy, plus
the default head stage that trains to convergence on cached features).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
SETTINGS = dict(train_per_class=100, test_per_class=100, image_size=96, batch_size=32,
                validation_split=0.1, seed=0)


def keras_tl_default(output_dir):
    """The demo job with keras_tl's defaults (default backbone and stages)."""
    import keras_tl
    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample

    start = time.perf_counter()
    (x, y), test, names = load_fashion_mnist_sample(SETTINGS["train_per_class"],
                                                    SETTINGS["test_per_class"])
    result = keras_tl.finetune(
        (x, y), test_data=test, class_names=names, image_size=SETTINGS["image_size"],
        batch_size=SETTINGS["batch_size"], validation_split=SETTINGS["validation_split"],
        seed=SETTINGS["seed"], output_dir=output_dir, verbose=0)
    seconds = time.perf_counter() - start
    return dict(test_accuracy=result.metrics["test"]["accuracy"],
                validation_accuracy=result.metrics["validation"]["accuracy"], seconds=seconds,
                epochs={name: len(h["loss"]) for name, h in result.histories.items()},
                stages=[s.to_config() for s in result.stages])


def head_stage(output_dir, cache_features, converge=False):
    """Times one head stage (backbone frozen) on the demo data, cached or not;
    with `converge`, the default head stage (up to 50 cheap epochs)."""
    import keras

    import keras_tl
    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample
    from keras_tl.tasks import get_task
    from keras_tl.training.loop import TrainingOptions, run_stages

    keras.utils.set_random_seed(SETTINGS["seed"])
    (x, y), _, names = load_fashion_mnist_sample(SETTINGS["train_per_class"], 1)
    task = get_task("image_classification")
    prepared = task.prepare((x, y), None, class_names=names, image_size=SETTINGS["image_size"],
                            batch_size=SETTINGS["batch_size"],
                            validation_split=SETTINGS["validation_split"], seed=SETTINGS["seed"])
    stage = keras_tl.default_stages()[0] if converge else keras_tl.Stage(
        "head", epochs=5, learning_rate=1e-3)
    options = TrainingOptions(verbose=0, cache_features=cache_features,
                              batch_size=SETTINGS["batch_size"], seed=SETTINGS["seed"])
    start = time.perf_counter()
    outcome = run_stages(prepared, [stage], os.path.join(output_dir, "checkpoint"), {},
                         options=options)
    seconds = time.perf_counter() - start
    validation = task.evaluate(prepared.model, prepared.validation)
    return dict(seconds=seconds, validation_accuracy=validation["accuracy"],
                validation_loss=validation["loss"], epochs=len(outcome.histories["head"]["loss"]),
                cached=bool(outcome.cached_stages))


def _child(kind):
    with tempfile.TemporaryDirectory() as folder:
        if kind == "hand":
            sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
            import hand_keras

            result = hand_keras.run(**SETTINGS)
        elif kind == "keras_tl":
            result = keras_tl_default(folder)
        elif kind == "cached":
            result = head_stage(folder, True)
        elif kind == "uncached":
            result = head_stage(folder, False)
        else:
            result = head_stage(folder, True, converge=True)
    print("RESULT " + json.dumps(result))


def _spawn(kind):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind],
                          capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"{kind}: {json.dumps({k: v for k, v in result.items() if k != 'stages'})}", flush=True)
    return result


def _machine():
    import keras

    import keras_tl

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    return dict(
        commit=commit, processor=platform.processor() or platform.machine(), cpus=os.cpu_count(),
        backend=keras.backend.backend(), keras=keras.__version__,
        keras_tl=keras_tl.__version__, python=platform.python_version(),
        shared=("shared by several sessions running tests at the same time: absolute "
                "times are noisy; the alternating pairs and the ratios are what to read"),
        date=time.strftime("%Y-%m-%d %H:%M"))


def _pairs(first, second, count):
    runs = []
    for index in range(count):
        order = (first, second) if index % 2 == 0 else (second, first)
        results = {kind: _spawn(kind) for kind in order}
        runs.append(dict(order=list(order), **results))
    return runs


def _write(name, report):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")


def _paired_summary(runs, new, base, metric, names, digits):
    """Per-pair wall-time ratios `new / base`, their median, and each
    side's `metric` and seconds (in the order of `names`)."""
    ratios = [run[new]["seconds"] / run[base]["seconds"] for run in runs]
    return {
        "ratio_per_pair": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        metric: {name: [run[name][metric] for run in runs] for name in names},
        "seconds": {name: [round(run[name]["seconds"], digits) for run in runs]
                    for name in names},
    }


def compare_with_hand(pairs):
    """Alternating pairs of the hand-written job and keras_tl's default."""
    runs = _pairs("hand", "keras_tl", pairs)
    report = dict(
        what="wall time of keras_tl's default run / the same job written by hand in Keras",
        **_paired_summary(runs, "keras_tl", "hand", "test_accuracy", ("hand", "keras_tl"), 1),
        backbone="mobilenet_v2_torch (torchvision ImageNet weights, offline)",
        data=SETTINGS,
        settings=dict(hand=runs[0]["hand"]["settings"],
                      keras_tl=dict(stages=runs[0]["keras_tl"]["stages"],
                                    epochs_run=runs[0]["keras_tl"]["epochs"])),
        runs=runs, machine=_machine())
    _write("vs_hand_keras.json", report)
    return report


def compare_warmup(pairs):
    """Alternating pairs of the same head stage, cached and uncached."""
    runs = _pairs("uncached", "cached", pairs)
    converged = _spawn("converge")
    report = dict(
        what="time of the same head stage (5 epochs, Adam 1e-3, backbone frozen) on cached "
             "features / on the backbone every epoch",
        **_paired_summary(runs, "cached", "uncached", "validation_accuracy",
                          ("cached", "uncached"), 2),
        default_head_stage_to_convergence=converged,
        backbone="mobilenet_v2_torch", data=dict(SETTINGS, test_per_class=None),
        runs=runs, machine=_machine())
    _write("cached_warmup.json", report)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--skip-warmup", action="store_true")
    parser.add_argument("--skip-hand", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child)
    if not args.skip_warmup:
        report = compare_warmup(args.pairs)
        print(f"cached / uncached head stage: median {report['median_ratio']}")
    if not args.skip_hand:
        report = compare_with_hand(args.pairs)
        print(f"keras_tl / hand-written wall time: median {report['median_ratio']}")


if __name__ == "__main__":
    main()
