"""Tiny BERT encoders and text data for the text tests (no tests here)."""

import os

import numpy as np
import pytest

POSITIVE = ["good", "great", "tasty", "love", "excellent", "fresh"]
NEGATIVE = ["bad", "awful", "stale", "hate", "terrible", "bland"]
FILLER = ["the", "a", "this", "product", "was", "is", "coffee", "tea", "really", "very"]
VOCABULARY = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!", ","]
              + POSITIVE + NEGATIVE + FILLER + ["##s", "##ly"])


def tiny_bert(num_layers=2, seed=0):
    """A 2-layer BERT (hidden 16) and its tokenizer with a 36-word vocabulary."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=num_layers, num_heads=2,
        hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    return backbone, tokenizer


def save_tiny_preset(folder):
    """Saves `tiny_bert()` as a keras_hub preset folder and returns its path."""
    backbone, tokenizer = tiny_bert()
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))
    return str(folder)


def sentiment_texts(per_class=24, seed=0):
    """Short reviews whose label is the kind of their opinion word."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in (("negative", NEGATIVE), ("positive", POSITIVE)):
        for _ in range(per_class):
            filler = list(rng.choice(FILLER, size=3))
            sentence = filler[:2] + [rng.choice(words)] + filler[2:]
            texts.append(" ".join(sentence).capitalize() + "!")
            labels.append(label)
    return texts, labels


def write_text_folder(root, per_class=6):
    """`sentiment_texts` as `root/<label>/<i>.txt`; returns root."""
    texts, labels = sentiment_texts(per_class)
    for i, (text, label) in enumerate(zip(texts, labels)):
        os.makedirs(os.path.join(root, label), exist_ok=True)
        with open(os.path.join(root, label, f"{i:03d}.txt"), "w", encoding="utf-8") as f:
            f.write(text)
    return str(root)


def write_text_csv(path, texts, labels, text_column="text", label_column="label"):
    """A CSV with the given columns; returns its path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", text_column, label_column])
        for i, (text, label) in enumerate(zip(texts, labels)):
            writer.writerow([i, text, label])
    return str(path)


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    """A tiny BERT keras_hub preset folder, shared by the session."""
    return save_tiny_preset(tmp_path_factory.mktemp("tiny_bert"))
