"""Sentiment on Amazon Fine Food reviews: fine-tune MiniLM in two stages.

Reviews are labelled "great" (5 stars) or "other". Compares the two-stage
fine-tuned all-MiniLM-L6-v2 (offline) with the frozen-encoder baseline
(mean-pooled MiniLM embeddings + logistic regression) and the majority
class, on the 1,000 test reviews.

    python examples/sentiment_amazon_reviews.py                    # ~15 min on 2 shared CPU cores
    python examples/sentiment_amazon_reviews.py --max-train 200 --epochs 1 --max-test 200

Default budget: 2,000 of the 4,000 training reviews (stratified sample); the
head until validation loss stops improving, then 2 fine-tuning epochs; 128
tokens. Measured numbers: benchmarks/results/text_sentiment.json.
"""

import argparse
import json
import os
import time

import keras_tl
from keras_tl.backbones.text_encoders import load_text_encoder
from keras_tl.datasets.text_datasets import load_amazon_fine_foods, majority_accuracy
from keras_tl.reports import machine_info
from keras_tl.tasks.text_classifier import default_text_stages, embed_texts, linear_probe


def frozen_baseline(train, test, sequence_length):
    """Test accuracy of logistic regression on frozen, mean-pooled MiniLM
    embeddings, and its seconds.

    Example:
    >>> accuracy, seconds = frozen_baseline((x, y), (x_test, y_test), 128)  # doctest: +SKIP
    """
    start = time.time()
    encoder = load_text_encoder(sequence_length=sequence_length)
    accuracy = linear_probe(embed_texts(encoder, train[0]), train[1],
                            embed_texts(encoder, test[0]), test[1])
    return accuracy, time.time() - start


def compare(train, test, class_names, head_epochs=1, epochs=2, sequence_length=128,
            batch_size=32, learning_rate=3e-5, output="runs/sentiment", baseline=True,
            verbose=2, seed=0):
    """Two-stage fine-tuning vs the frozen baseline vs the majority class.

    Returns `(results dict, FinetuneResult)`.

    Example:
    >>> results, result = compare((x, y), (x_test, y_test), names, epochs=1)  # doctest: +SKIP
    """
    results = {"majority_class": dict(test_accuracy=round(majority_accuracy(train[1], test[1]), 4))}
    if baseline:
        accuracy, seconds = frozen_baseline(train, test, sequence_length)
        results["frozen_baseline"] = dict(test_accuracy=round(accuracy, 4), seconds=round(seconds, 1))
        print(f"== frozen MiniLM + logistic regression: {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    start = time.time()
    result = keras_tl.finetune(
        train, class_names=class_names, test_data=test, sequence_length=sequence_length,
        stages=default_text_stages(head_epochs, epochs, finetune_learning_rate=learning_rate),
        batch_size=batch_size, output_dir=output, verbose=verbose, seed=seed)
    seconds = time.time() - start
    accuracy = result.metrics["test"]["accuracy"]
    results["two_stage_finetune"] = dict(test_accuracy=round(accuracy, 4), seconds=round(seconds, 1))
    print(f"== two-stage fine-tuned MiniLM: {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    results["setup"] = dict(train=len(train[0]), test=len(test[0]), head_epochs=head_epochs,
                            finetune_epochs=epochs, sequence_length=sequence_length,
                            learning_rate=learning_rate, backbone=result.info["backbone"])
    return results, result


def parse_args(argv=None, description=__doc__, max_train=2000, total="4,000 reviews",
               output="runs/sentiment_amazon_reviews"):
    """The text examples' shared command-line options.

    Example:
    >>> parse_args(["--max-train", "200", "--epochs", "1"]).max_train
    200
    """
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=max_train,
                        help=f"training texts (stratified sample; 0 = all {total})")
    parser.add_argument("--max-test", type=int, default=0, help="test texts (0 = all)")
    parser.add_argument("--head-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--output", default=output)
    parser.add_argument("--export", default=None, help="e.g. saved_models/NAME")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None,
                        help="where the results JSON goes (default: OUTPUT/results.json)")
    return parser.parse_args(argv)


def report(results, path, title, wall):
    """Prints the comparison table and writes the results, with the machine,
    as JSON to `path`.

    Example:
    >>> report(results, "runs/sentiment/results.json", "Sentiment", 600.0)  # doctest: +SKIP
    """
    results["setup"]["wall_seconds"] = round(wall, 1)
    results["machine"] = dict(machine_info(), note="shared machine; times are indicative")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    setup = results["setup"]
    print(f"\n{title}: {setup['train']} training / {setup['test']} test texts, "
          f"{setup['sequence_length']} tokens, {setup['backbone']}")
    for name in ("two_stage_finetune", "frozen_baseline", "majority_class"):
        if name in results:
            row = results[name]
            took = f"  ({row['seconds']:.0f} s)" if "seconds" in row else ""
            print(f"  {name:<20} test accuracy {row['test_accuracy']:.4f}{took}")
    print(f"Total wall time {wall:.0f} s; results in {path}")


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    train, test, names = load_amazon_fine_foods(args.max_train or None, args.max_test or None,
                                                seed=args.seed)
    results, result = compare(train, test, names, args.head_epochs, args.epochs,
                              args.sequence_length, args.batch_size, args.learning_rate,
                              os.path.join(args.output, "finetune"), not args.no_baseline,
                              seed=args.seed)
    if args.export:
        exported = keras_tl.export(result, args.export)
        print(exported.summary())
    report(results, args.results or os.path.join(args.output, "results.json"),
           "Amazon Fine Food sentiment", time.time() - start)
    return results


if __name__ == "__main__":
    main()
