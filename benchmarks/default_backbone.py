"""Which offline backbone should be the default: the demo's two-stage run for
each, side by side in one process, written to a JSON file.

    python benchmarks/default_backbone.py [--out benchmarks/results/default_backbone.json]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from fashion_mnist_demo import compare  # noqa: E402

from _results import write_results  # noqa: E402  (benchmarks/ is the script's folder)

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "mobilenet_v2_torch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--out", default="benchmarks/results/default_backbone.json")
    parser.add_argument("--output", default="runs/default_backbone")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed (split, shuffling and head init)")
    args = parser.parse_args()
    rows = {}
    for seed in args.seeds:
        for name in args.backbones:
            results = compare(name, output=os.path.join(args.output, f"{name}-{seed}"),
                              verbose=0, runs=("two_stage",), seed=seed)
            rows.setdefault(name, []).append(dict(results["two_stage"], seed=seed))
            print(name, rows[name][-1], flush=True)
    summary = {
        name: dict(mean_test_accuracy=round(sum(r["test_accuracy"] for r in runs) / len(runs), 4),
                   mean_seconds=round(sum(r["seconds"] for r in runs) / len(runs), 1))
        for name, runs in rows.items()
    }
    setup = {k: v for k, v in results["setup"].items() if k != "backbone"}
    write_results(args.out, summary, setup=setup, two_stage=rows)


if __name__ == "__main__":
    main()
