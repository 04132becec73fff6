"""Multi-label images: Fashion-MNIST tiles holding 1 to 3 items, tagged with each.

Builds the tile set of `keras_tl.datasets.fashion_tiles` (items of the test tiles never
appear in a training tile), writes it as PNG files plus a `labels.csv` (the CSV reader
users use), fine-tunes with keras_tl's defaults (default backbone, image size and
stages; per-class thresholds chosen on the validation split) and measures mAP, micro-F1
and macro-F1 on the held-out test tiles, once per seed.

    python examples/multi_label_tiles.py                      # 3 seeds, < 15 min on 2 cores
    python examples/multi_label_tiles.py --train 60 --test 30 --seeds 0   # smoke run
"""

import argparse
import os
import sys
import time

import numpy as np

import keras_tl
from keras_tl.datasets.fashion_tiles import make_fashion_tiles

# A plain run writes here; the README's numbers come from a run with
# --results benchmarks/results/multi_label_tiles.json
RESULTS = os.path.join("runs", "multi_label_tiles", "results.json")
METRICS = ("mAP", "micro_f1", "macro_f1")


def write_tiles(folder, count, seed, split):
    """Writes `count` tiles as PNG files and a `labels.csv` (`file`, `;`-separated
    `labels`) into `folder`; returns the folder.

    Example:
    >>> write_tiles("runs/tiles/train", 8, seed=0, split="train")
    'runs/tiles/train'
    """
    from PIL import Image

    images, targets, names = make_fashion_tiles(count, seed=seed, split=split)
    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    rows = ["file,labels"]
    for i, (image, row) in enumerate(zip(images, targets)):
        path = f"img/{i:05d}.png"
        Image.fromarray(image).save(os.path.join(folder, path))
        rows.append(f"{path}," + ";".join(str(n) for n, v in zip(names, row) if v))
    with open(os.path.join(folder, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return folder


def run_seed(seed, train, test, output, verbose=2):
    """One `keras_tl.finetune` with the defaults (only `seed` and the output folder
    given); returns the test metrics, the thresholds and the seconds it took."""
    start = time.time()
    result = keras_tl.finetune(train, test_data=test, seed=seed, verbose=verbose,
                               output_dir=os.path.join(output, f"seed_{seed}"))
    seconds = time.time() - start
    test_metrics = result.metrics["test"]
    return dict({name: round(float(test_metrics[name]), 4) for name in METRICS},
                thresholds=result.metrics["thresholds"]["values"],
                task=result.info.get("task"),
                backbone=result.info.get("backbone"), input_size=result.info.get("input_size"),
                seconds=round(seconds, 1))


def summarize(per_seed):
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of each metric.

    Example:
    >>> summarize({"0": {"mAP": 0.8}, "1": {"mAP": 0.9}})["mAP"]["mean"]
    0.85
    """
    summary = {}
    for name in METRICS:
        values = np.array([run[name] for run in per_seed.values()], dtype="float64")
        summary[name] = dict(mean=round(float(values.mean()), 4),
                             sd=round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
                             seeds=len(values))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400,
                        help="training tiles (20%% of them validation)")
    parser.add_argument("--test", type=int, default=200, help="held-out test tiles")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the tile set")
    parser.add_argument("--output", default="runs/multi_label_tiles")
    parser.add_argument("--results", default=RESULTS, help="where the results JSON goes")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks._results import write_results

    start = time.time()
    train = write_tiles(os.path.join(args.output, "data", "train"), args.train,
                        args.data_seed, "train")
    test = write_tiles(os.path.join(args.output, "data", "test"), args.test,
                       args.data_seed, "test")
    per_seed = {}
    for seed in args.seeds:
        per_seed[str(seed)] = run_seed(seed, train, test, args.output)
        print(f"== seed {seed}: " + ", ".join(f"{name} {per_seed[str(seed)][name]:.4f}"
                                              for name in METRICS)
              + f" ({per_seed[str(seed)]['seconds']:.0f} s)", flush=True)
    task = keras_tl.tasks.get_task("multi_label_image_classification")
    _, train_targets, names = make_fashion_tiles(args.train, seed=args.data_seed)
    setup = dict(
        task=task.name, backbone=task.default_backbone,
        input_size=next(iter(per_seed.values()))["input_size"],
        data="keras_tl.datasets.fashion_tiles (56x56 2x2 tiles of 1-3 Fashion-MNIST items), "
             "written as PNG + labels.csv and read through the CSV reader",
        train_tiles=args.train, test_tiles=args.test, data_seed=args.data_seed,
        classes=list(names), mean_labels_per_tile=round(float(train_targets.sum(1).mean()), 3),
        options="keras_tl.finetune defaults (stages, batch size, validation_split 0.2 "
                "(of the training tiles), image size, thresholds per class on validation); "
                "only seed varies",
        stages=[s.to_config() for s in task.default_stages()],
        seeds=args.seeds, wall_seconds=round(time.time() - start, 1))
    write_results(args.results, summarize(per_seed), setup=setup, seeds=per_seed)
    print(f"Total wall time {setup['wall_seconds']:.0f} s; results in {args.results}")


if __name__ == "__main__":
    main()
