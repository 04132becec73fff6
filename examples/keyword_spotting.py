"""What transfer learning buys for speech: six spoken keywords, unseen voices.

Fine-tunes the pretrained speech embedding (Google's, as openWakeWord ships
it) two-stage on the shipped espeak-ng keyword set, and compares test
accuracy on voices held out of training with a frozen-encoder (head-only)
run and the same architecture trained from scratch, on the same epoch budget.

    python examples/keyword_spotting.py                     # full run, a few minutes on 2 cores
    python examples/keyword_spotting.py --epochs 1 --limit 60   # smoke run
"""

import argparse
import json
import os
import time

import keras_tl
from keras_tl.datasets.keywords import load_keywords
from keras_tl.reports import machine_info

# A plain run (`make demo` for images) writes here; the README's numbers come from a run with
# --results benchmarks/results/keyword_spotting.json
RESULTS = os.path.join("runs", "keyword_spotting", "results.json")


def compare(head_epochs=10, finetune_epochs=10, limit=None, output="runs/keyword_spotting",
            verbose=2, runs=("two_stage", "frozen_head_only", "from_scratch"), seed=0):
    """Runs the configurations named in `runs` on the shipped keywords;
    returns a dict of their test accuracies (held-out voices) and times.

    Example:
    >>> compare(head_epochs=1, finetune_epochs=1, limit=60, verbose=0,
    ...         runs=("two_stage",))["two_stage"]["test_accuracy"] > 0  # doctest: +SKIP
    True
    """
    data = load_keywords()
    x, y, x_test, y_test = data["train_x"], data["train_y"], data["test_x"], data["test_y"]
    if limit:
        x, y, x_test, y_test = x[:limit], y[:limit], x_test[:limit], y_test[:limit]
    names = list(data["class_names"])
    epochs = head_epochs + finetune_epochs
    two_stage = keras_tl.get_task("keyword_spotting").default_stages(head_epochs, finetune_epochs)
    stages = {
        "two_stage": two_stage,
        "frozen_head_only": [keras_tl.Stage("head", epochs=epochs,
                                            learning_rate=two_stage[0].learning_rate)],
        "from_scratch": [keras_tl.Stage("scratch", unfreeze="all", epochs=epochs,
                                        learning_rate=1e-3)],
    }
    results = {}
    for name in runs:
        start = time.time()
        result = keras_tl.finetune(
            (x, y), "speech_embedding", class_names=names, test_data=(x_test, y_test),
            weights=None if name == "from_scratch" else "default", stages=stages[name],
            batch_size=32, validation_split=0.1, seed=seed, verbose=verbose, patience=4,
            output_dir=os.path.join(output, name))
        seconds = time.time() - start
        accuracy = result.metrics["test"]["accuracy"]
        results[name] = dict(test_accuracy=round(accuracy, 4), seconds=round(seconds, 1))
        print(f"== {name}: test accuracy {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    results["setup"] = dict(
        backbone="speech_embedding", data="keras_tl.datasets.keywords (espeak-ng, 6 words)",
        train_clips=int(len(y)), test_clips=int(len(y_test)),
        test_voices=sorted(set(map(str, data["test_voices"]))),
        clip_seconds=1.0, head_epochs=head_epochs, finetune_epochs=finetune_epochs,
        batch_size=32, validation_split=0.1, patience=4, seed=seed,
        stages={name: [s.to_config() for s in stages[name]] for name in runs})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="sets both epoch counts")
    parser.add_argument("--limit", type=int, default=None, help="clips per split (smoke runs)")
    parser.add_argument("--output", default="runs/keyword_spotting")
    parser.add_argument("--results", default=RESULTS, help="where the results JSON goes")
    args = parser.parse_args()
    if args.epochs is not None:
        args.head_epochs = args.finetune_epochs = args.epochs
    start = time.time()
    results = compare(args.head_epochs, args.finetune_epochs, args.limit, args.output)
    results["setup"]["wall_seconds"] = round(time.time() - start, 1)
    results["machine"] = dict(machine_info(), note="shared machine; times are indicative")
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    print("\nKeywords, {train_clips} training clips, {test_clips} test clips from "
          "held-out voices:".format(**results["setup"]))
    for name in ("two_stage", "frozen_head_only", "from_scratch"):
        print(f"  {name:<18} test accuracy {results[name]['test_accuracy']:.4f}"
              f"  ({results[name]['seconds']:.0f} s)")
    print(f"Total wall time {results['setup']['wall_seconds']:.0f} s; results in {args.results}")


if __name__ == "__main__":
    main()
