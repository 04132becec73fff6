"""Which offline backbone should be the default: the demo's two-stage run for
each, side by side in one process, written to a JSON file.

    python benchmarks/default_backbone.py [--out benchmarks/results/default_backbone.json]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from fashion_mnist_demo import compare  # noqa: E402

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "mobilenet_v2_torch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--out", default="benchmarks/results/default_backbone.json")
    parser.add_argument("--output", default="runs/default_backbone")
    args = parser.parse_args()
    rows = {}
    for name in args.backbones:
        results = compare(name, output=os.path.join(args.output, name), verbose=0,
                          runs=("two_stage",))
        rows[name] = results["two_stage"]
        print(name, rows[name], flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(dict(setup=results["setup"], two_stage=rows), f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
