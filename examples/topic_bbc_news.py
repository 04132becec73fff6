"""Topics of BBC News articles: fine-tune MiniLM in two stages.

Five topics (business, entertainment, politics, sports, tech); a seeded,
stratified 20% of the 2,225 articles is the test set. Compares the
two-stage fine-tuned all-MiniLM-L6-v2 (offline) with the frozen-encoder
baseline (mean-pooled embeddings + logistic regression) and the majority
class. Articles are truncated to `--sequence-length` tokens (headline and
opening paragraphs).

    python examples/topic_bbc_news.py                    # ~15 min on 2 shared CPU cores
    python examples/topic_bbc_news.py --max-train 200 --epochs 1 --max-test 100

Default budget: all 1,781 training articles; the head until validation loss
stops improving, then 2 fine-tuning epochs; 128 tokens. Measured numbers:
benchmarks/results/text_topics.json (written with --results).
"""

import os
import time

from sentiment_amazon_reviews import compare, parse_args, report

from keras_tl.data.text import TextData, sample_texts
from keras_tl.datasets.text_datasets import load_bbc_news


def load(max_train=None, max_test=None, seed=0):
    """Train/test texts and labels, and the topic names.

    Example:
    >>> (x, y), (x_test, y_test), names = load(max_train=200)  # doctest: +SKIP
    """
    train, (x_test, y_test), names = load_bbc_news(max_train=max_train, seed=seed)
    test = sample_texts(TextData(list(x_test), y_test, names), max_test, seed=seed)
    return train, (test.texts, test.labels), names


def main(argv=None):
    args = parse_args(argv, __doc__, max_train=0, total="1,781 articles",
                      output="runs/topic_bbc_news")
    start = time.time()
    train, test, names = load(args.max_train or None, args.max_test or None, args.seed)
    results, result = compare(train, test, names, args.head_epochs, args.epochs,
                              args.sequence_length, args.batch_size, args.learning_rate,
                              os.path.join(args.output, "finetune"), not args.no_baseline,
                              seed=args.seed)
    if args.export:
        import keras_tl

        print(keras_tl.export(result, args.export).summary())
    report(results, args.results or os.path.join(args.output, "results.json"),
           "BBC News topics", time.time() - start)
    return results


if __name__ == "__main__":
    main()
