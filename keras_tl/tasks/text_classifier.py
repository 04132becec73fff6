"""Text classifier: a keras_hub encoder, pooling, dropout, softmax head.

The training model takes the tokenizer's int arrays (`token_ids`,
`padding_mask`, ...); `TextClassifierPipeline` wraps it with the tokenizer
so `predict` takes raw strings.

Keras is imported inside the functions (and `TextClassifierPipeline`, a
Keras model, lives in `keras_tl.tasks.text_pipeline`): predicting from a
text model's ONNX file needs the task, not Keras.
"""

import json
import os
import shutil

import numpy as np

from keras_tl import _compat
from keras_tl.data.text import is_text_data, length_batches, load_texts, make_text_dataset
from keras_tl.errors import ConfigError
from keras_tl.export_spec import Asset, ConvertedGraph, Signature
from keras_tl.tasks import wordpiece
from keras_tl.tasks.classification import Classification, classification_head
from keras_tl.tasks.options import TEXT_CLASSIFICATION
from keras_tl.tasks.wordpiece import load_tokenizer
from keras_tl.training.cache import split_frozen_part
from keras_tl.training.stages import HEAD_CACHED_EPOCHS, Stage

POOLINGS = ("mean", "pooled")
TEXTS_NAME = "texts"  # the SavedModel's input: raw UTF-8 strings
TOKENIZER_DIR = "tokenizer"  # in an export: vocab.txt, tokenizer_config.json, wordpiece.py
# Verified on every export, beside real texts: the tokenizer rules' corners.
TOKENIZER_CHECK_TEXTS = (
    "Crème brûlée, naïve café — ÜNÏCÖDÉ text!",
    "全角ＡＢＣ, 中文 and ﬁne Straße 😀",
    "soft\u00adhyphen, zero\u200bwidth, tab\tand\u00a0no-break space",
    " ".join(["a very long text"] * 100),
)
_EMBEDDING_LAYERS = ("token_embedding", "position_embedding", "segment_embedding",
                     "embeddings_layer_norm", "embeddings")


def default_text_stages(head_epochs=2, finetune_epochs=3, learning_rate=1e-2,
                        finetune_learning_rate=3e-5, unfreeze="all", lora_rank=None):
    """Head warm-up with the encoder frozen (Adam at `learning_rate`, 1e-2:
    a linear head on frozen features needs a high rate to converge in few
    steps), then fine-tuning at `finetune_learning_rate` (3e-5) with 10%
    warm-up and cosine decay: all transformer layers (embeddings stay
    frozen), the top N (`unfreeze=N`), or LoRA adapters (`lora_rank=R`).

    Example:
    >>> [(s.name, s.learning_rate) for s in default_text_stages()]
    [('head', 0.01), ('finetune', 3e-05)]
    """
    return [
        Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=learning_rate,
              cached_epochs=HEAD_CACHED_EPOCHS),
        Stage("finetune", unfreeze=None if lora_rank else unfreeze, epochs=finetune_epochs,
              learning_rate=finetune_learning_rate, warmup=0.1, schedule="cosine",
              lora_rank=lora_rank),
    ]


def build_text_classifier(encoder, num_classes, dropout=0.1, pooling="mean",
                          name="text_classifier"):
    """Puts a classification head on a loaded text encoder.

    Inputs are the encoder's int32 arrays `[batch, length]` (length up to
    `sequence_length`); the output is softmax `"probabilities"`.

    Args:
        encoder: a text `keras_tl.backbones.LoadedBackbone` (`load_text_encoder`).
        num_classes: number of classes (>= 2).
        dropout: dropout rate before the dense layer.
        pooling: `"mean"` (token embeddings averaged over the padding mask,
            what sentence-transformers use) or `"pooled"` (the encoder's
            pooled [CLS] output).

    Example:
    >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
    >>> model = build_text_classifier(encoder, num_classes=5)
    >>> model.output_names, model.output.shape
    (['probabilities'], (None, 5))
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    backbone = encoder.model
    # any length up to sequence_length: batches are cut to their longest text
    import keras

    inputs = {key: keras.Input((None,), dtype="int32", name=key) for key in encoder.input_names}
    features = backbone(inputs)
    if pooling == "pooled":
        if "pooled_output" not in features:
            raise ConfigError(f"{type(backbone).__name__} has no pooled output; use pooling='mean'.")
        features = features["pooled_output"]
    elif isinstance(features, dict):
        features = features["sequence_output"]
    outputs = classification_head(features, num_classes, dropout, pool_mask=inputs["padding_mask"])
    return keras.Model(inputs, outputs, name=name)


def apply_text_stage(model, stage, train_embeddings=False, pooling="mean"):
    """Sets the encoder's `trainable` flags for a `Stage`.

    `unfreeze=None` freezes the encoder; an int N unfreezes the top N
    transformer layers; `"all"` every transformer layer (embeddings only
    with `train_embeddings=True`); a layer name unfreezes from that layer
    up. `lora_rank=R` enables keras_hub LoRA adapters of rank R on the
    attention query/value projections and trains only those.

    Example:
    >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
    >>> model = build_text_classifier(encoder, num_classes=2)
    >>> _ = apply_text_stage(model, Stage("ft", unfreeze=2, learning_rate=3e-5))
    >>> [layer.name for layer in model.get_layer("backbone").layers
    ...  if layer.weights and layer.trainable]
    ['transformer_layer_4', 'transformer_layer_5']
    """
    from keras_tl.freezing import get_backbone

    backbone = get_backbone(model)
    if stage.lora_rank:
        return _enable_lora(backbone, stage.lora_rank)
    if stage.unfreeze is None or stage.unfreeze == "none":
        backbone.trainable = False
        return model
    layers = [layer for layer in backbone.layers if layer.weights]
    blocks = [layer for layer in layers if layer.name.startswith("transformer_layer")]
    if isinstance(stage.unfreeze, bool) or not isinstance(stage.unfreeze, (int, str)):
        raise TypeError(f"unfreeze must be None, 'all', an int or a layer name; got {stage.unfreeze!r}.")
    if isinstance(stage.unfreeze, int):
        if stage.unfreeze < 0:
            raise ValueError(f"unfreeze must be >= 0, got {stage.unfreeze}.")
        chosen = blocks[len(blocks) - stage.unfreeze:] if stage.unfreeze else []
    elif stage.unfreeze == "all":
        chosen = [layer for layer in layers
                  if train_embeddings or layer.name not in _EMBEDDING_LAYERS]
    else:
        names = [layer.name for layer in layers]
        matches = [i for i, n in enumerate(names) if n == stage.unfreeze or n.startswith(stage.unfreeze)]
        if not matches:
            raise ValueError(f"The encoder has no layer named {stage.unfreeze!r}; its layers are {names}.")
        chosen = layers[matches[0]:]
    if pooling != "pooled":  # the pooler is unused with mean pooling
        chosen = [layer for layer in chosen if layer.name != "pooled_dense"]
    backbone.trainable = True
    chosen_ids = {id(layer) for layer in chosen}
    for layer in layers:
        layer.trainable = id(layer) in chosen_ids
    return model


def _enable_lora(backbone, rank):
    current = _compat.lora_rank(backbone)
    if current is not None and current != rank:
        raise ValueError(f"LoRA is already enabled with rank {current}; cannot switch to {rank}.")
    if current is None:
        backbone.enable_lora(rank)
    else:  # enabling again would add a second set of adapters: reset the flags
        backbone.trainable = True
        for layer in _compat.flatten_layers(backbone, include_self=False):
            layer.trainable = False
        for layer in _compat.flatten_layers(backbone, include_self=False):
            if getattr(layer, "lora_enabled", False):
                layer.trainable = True
                _compat.freeze_lora_base_kernel(layer)
    # Mark the blocks holding adapters trainable without touching their other
    # variables, so per-block counts (trainable_summary) see the adapters.
    for layer in _compat.flatten_layers(backbone, include_self=False):
        if any(getattr(sub, "lora_enabled", False) for sub in _compat.flatten_layers(layer)):
            _compat.set_own_trainable(layer, True)
    return backbone


def _is_folder(data):
    return isinstance(data, (str, os.PathLike)) and os.path.isdir(data)


class TextClassification(Classification):
    """Fine-tunes a keras_hub text encoder into a text classifier.

    The training model takes the tokenizer's int arrays; the
    `inference_model` (a `TextClassifierPipeline`) and every export take
    raw strings.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("text_classification")
    >>> sorted(option.name for option in task.options)
    ['calibrate', 'label_column', 'pooling', 'sequence_length', 'text_column', 'tokenizer', 'train_embeddings']
    """

    name = "text_classification"
    modality = "text"
    default_backbone = "all_minilm_l6_v2"
    options = TEXT_CLASSIFICATION
    file_extensions = (".txt",)

    def recognizes(self, data, backbone=None):
        """Text data (a CSV file, `(texts, labels)`), or a text encoder
        named as backbone; a folder of class sub-folders goes by its files
        (`find_task`: `.txt`, `file_extensions`).

        Example:
        >>> get_task("text_classification").recognizes("photos/", backbone="minilm")
        True
        """
        if not _is_folder(data) and is_text_data(data):
            return True
        if backbone is None:
            return False
        from keras_tl.backbones import text_encoders

        return text_encoders.is_text_backbone(backbone)

    def default_stages(self):
        return default_text_stages()

    def read(self, data, loaded=None, class_names=None, min_classes=2, text_column="text",
             label_column="label", **options):
        """The texts and labels (`keras_tl.data.text.TextData`) of a CSV/TSV
        file, a folder of `.txt` files per class, `(texts, labels)` or a
        DataFrame (`text_column`, `label_column` name the columns).

        Example:
        >>> get_task("text_classification").read((["good", "bad"], ["pos", "neg"])).class_names
        ['neg', 'pos']
        """
        return load_texts(data, class_names=class_names, min_classes=min_classes,
                          text_column=text_column, label_column=label_column)

    def load_backbone(self, backbone, weights, sequence_length=128, tokenizer=None, **options):
        """The text encoder (`weights` `"default"` or `None`), its tokenizer
        padding or cutting every text to `sequence_length` tokens;
        `tokenizer` goes with a keras_hub `Backbone` object as `backbone`.

        Example:
        >>> encoder = get_task("text_classification").load_backbone(
        ...     None, None, sequence_length=8)  # random MiniLM, fast
        >>> encoder.input_size
        (8,)
        """
        from keras_tl.backbones.text_encoders import load_text_encoder

        if weights not in ("default", "preset", None):
            raise ConfigError(f"Text encoders take weights='default' or None, got {weights!r}.")
        return load_text_encoder(backbone, sequence_length, weights=weights, tokenizer=tokenizer)

    def build_model(self, loaded, class_names, train, dropout, pooling="mean",
                    train_embeddings=False, **options):
        """The classifier on token ids (`pooling`: `"mean"` or `"pooled"`;
        `train_embeddings` unfreezes the embeddings with `unfreeze="all"`)."""
        model = build_text_classifier(loaded, len(class_names),
                                      dropout=0.1 if dropout is None else dropout,
                                      pooling=pooling)
        tokenizer_config = {k: v for k, v in loaded.tokenizer.get_config().items()
                            if isinstance(v, (str, int, float, bool, type(None)))}
        return model, dict(
            sequence_length=loaded.input_size[0],
            pooling=pooling,
            train_embeddings=bool(train_embeddings),
            preprocessing=dict(tokenizer=type(loaded.tokenizer).__name__,
                               vocabulary_size=int(loaded.tokenizer.vocabulary_size()),
                               inputs=loaded.input_names, **tokenizer_config))

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0, **options):
        """Texts tokenized once, batched."""
        from keras_tl.backbones.text_encoders import tokenize

        return make_text_dataset(tokenize(loaded, examples.texts), examples.labels, batch_size,
                                 shuffle=training, seed=seed)

    def verification_sample(self, examples, info):
        return examples.texts[:32]

    def inference_model(self, model, loaded, class_names):
        """A `TextClassifierPipeline`: raw strings in."""
        from keras_tl.tasks.text_pipeline import TextClassifierPipeline

        return TextClassifierPipeline(model, loaded.preprocessor, class_names,
                                      name="text_pipeline")

    def apply_stage(self, model, stage, info):
        apply_text_stage(model, stage, train_embeddings=info.get("train_embeddings", False),
                         pooling=info.get("pooling", "mean"))

    def split_head(self, model):
        """Frozen encoder and padding-masked pooling / dropout and the
        softmax layer, for cached warm-up: the pooled features are cached, so
        the head needs no mask (see `keras_tl.training.cache`). A partly
        unfrozen encoder is not split (its layers also take the mask).

        Example:
        >>> from keras_tl.backbones.text_encoders import load_text_encoder
        >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
        >>> model = build_text_classifier(encoder, num_classes=2)
        >>> _ = apply_text_stage(model, Stage("head"))  # the encoder frozen
        >>> features, head = get_task("text_classification").split_head(model)
        >>> features.output.shape, head.input.shape
        ((None, 384), (None, 384))
        """
        return split_frozen_part(model)

    def prepare_inputs(self, inputs, info):
        """Texts are fed as they are: the pipeline tokenizes them.

        Example:
        >>> get_task("text_classification").prepare_inputs(["tasty"], {})
        ['tasty']
        """
        return inputs

    def model_info(self, model):
        """For a bare `TextClassifierPipeline`: its sequence length and
        tokenizer; else `None`.

        Example:
        >>> from keras_tl.tasks import get_task
        >>> get_task("text_classification").model_info(object()) is None
        True
        """
        from keras_tl.tasks.text_pipeline import TextClassifierPipeline

        if not isinstance(model, TextClassifierPipeline):
            return None
        tokenizer = model.preprocessor.tokenizer
        return dict(sequence_length=int(model.preprocessor.sequence_length),
                    preprocessing=dict(tokenizer=type(tokenizer).__name__,
                                       vocabulary_size=int(tokenizer.vocabulary_size()),
                                       inputs=list(model.classifier.input)))

    def export_spec(self, model, info, class_names, sample=None):
        """`serving_default` on raw UTF-8 strings `[batch]`: the pipeline's
        keras_hub tokenizer runs in the graph (TensorFlow Text ops, so a
        loader needs `import tensorflow_text`), then the classifier. When
        the tokenizer is a BERT-style WordPiece one that
        `tokenizer/wordpiece.py` reproduces, converting formats convert the
        classifier on token ids, fed by that file's rules from the
        `tokenizer/` assets written beside (`vocab.txt`,
        `tokenizer_config.json`, `wordpiece.py`); else there is nothing to
        convert. Verified on `verification_texts`.

        Example:
        >>> spec = get_task("text_classification").export_spec(None, {}, ["a", "b"])
        >>> spec.contract()["serving_default"]["inputs"], spec.converted.reads_assets
        ({'texts': {'dtype': 'string', 'shape': [None]}}, True)
        """
        build = predict = None
        assets = () if model is None else tokenizer_assets(model)
        if model is not None:
            def build():
                import tensorflow as tf  # serving graphs only

                classifier, preprocessor = model.classifier, model.preprocessor
                keys = list(classifier.input)

                @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXTS_NAME)])
                def serve(texts):
                    features = preprocessor(texts)
                    features = {key: tf.cast(features[key], tf.int32) for key in keys}
                    return self.classification_outputs(classifier(features, training=False),
                                                       class_names)

                return serve

            def predict(texts):
                return {model.classifier.output_names[0]: np.asarray(model.predict(list(texts)))}

        signature = Signature("serving_default",
                              {TEXTS_NAME: {"dtype": "string", "shape": [None]}},
                              self.output_contract(class_names), build, convertible=False)
        converted = None
        if model is None or assets:
            converted = ConvertedGraph(getattr(model, "classifier", None), feed=_token_feed,
                                       reads_assets=True)
        return self.classification_spec(
            model, info, class_names, [signature], verification_texts(sample), converted,
            predict=predict, assets=assets)


def verification_texts(sample=None, count=8):
    """Texts to compare formats on: up to `count` of `sample` (real
    validation texts) when given, else fixed sentences; then texts that
    test the tokenizer's rules (accents, CJK, full-width and invisible
    characters, a text longer than the sequence).

    Example:
    >>> texts = verification_texts(["tasty", "bad"])
    >>> texts[:2], len(texts)
    (['tasty', 'bad'], 6)
    """
    fixed = ["great value, would buy again", "stale and bland", "ok",
             "the delivery was late but the product itself is excellent",
             "terrible", "not bad at all", "I love it", "never again"]
    texts = fixed if sample is None else [str(t) for t in sample]
    return texts[:max(count, 1)] + list(TOKENIZER_CHECK_TEXTS)


def embed_texts(encoder, texts, batch_size=64):
    """Mean-pooled (padding-masked) token embeddings of a frozen encoder, as
    a float32 `[len(texts), hidden]` array.

    Example:
    >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
    >>> embed_texts(encoder, ["hello", "hi there"]).shape
    (2, 384)
    """
    from keras_tl.backbones.text_encoders import tokenize


    import keras

    inputs = {key: keras.Input((None,), dtype="int32", name=key) for key in encoder.input_names}
    features = encoder.model(inputs)
    sequence = features["sequence_output"] if isinstance(features, dict) else features
    pooled = keras.layers.GlobalAveragePooling1D()(sequence, mask=inputs["padding_mask"])
    embedder = keras.Model(inputs, pooled)
    arrays = tokenize(encoder, list(texts))
    out = np.zeros((len(texts), pooled.shape[-1]), "float32")
    for idx, batch in length_batches(arrays, batch_size):
        out[idx] = np.asarray(embedder.predict_on_batch(batch))
    return out


def linear_probe(train_features, train_labels, test_features, test_labels, C=1.0):
    """Test accuracy of a logistic regression (scikit-learn) on frozen
    features: the frozen-encoder baseline.

    Example:
    >>> # features would come from embed_texts(encoder, texts)
    >>> train = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]])
    >>> linear_probe(train, [0, 0, 1, 1], np.array([[0.2, 0.8], [0.8, 0.3]]), [0, 1])
    1.0
    """
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=C, max_iter=2000)
    classifier.fit(train_features, train_labels)
    return float(np.mean(classifier.predict(test_features) == np.asarray(test_labels)))


def _wordpiece_settings(pipeline):
    """`tokenizer_config.json` for a pipeline whose tokenizer and packer
    follow the rules of `keras_tl.tasks.wordpiece`, else None."""
    import keras_hub

    preprocessor = getattr(pipeline, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if not isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer) or \
            not tokenizer.split or tokenizer.special_tokens_in_strings or \
            tokenizer.suffix_indicator != "##" or \
            not all(hasattr(tokenizer, name) for name in ("cls_token", "sep_token", "pad_token")):
        return None
    if (tokenizer.start_token_id, tokenizer.end_token_id) != (
            tokenizer.token_to_id(tokenizer.cls_token), tokenizer.token_to_id(tokenizer.sep_token)):
        return None
    length = int(preprocessor.sequence_length)
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": bool(tokenizer.lowercase),
        "strip_accents": bool(tokenizer.strip_accents),
        "tokenize_chinese_chars": bool(tokenizer.split_on_cjk),
        "unk_token": tokenizer.oov_token,
        "cls_token": tokenizer.cls_token,
        "sep_token": tokenizer.sep_token,
        "pad_token": tokenizer.pad_token,
        "model_max_length": length,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": list(pipeline.classifier.input),
        "keras_tl": {
            "reference": "wordpiece.py in this folder reproduces keras_hub's token ids exactly: "
                         "python wordpiece.py FOLDER TEXT...",
            "lowercase": "per word, after splitting: Unicode NFKC_Casefold (NFKC, full case "
                         "folding, NFKC, default-ignorable code points removed)",
            "strip_accents": "before splitting: NFD, then marks (Mn) removed",
            "split": "on ASCII whitespace and Cc/Cf characters (dropped); on ASCII "
                     "non-alphanumerics, Unicode punctuation (P*) and CJK ideographs (kept)",
            "wordpiece": "greedy longest match first, '##' on continuation pieces; a word "
                         "over 100 UTF-8 bytes or without a match is the unk_token",
            "packing": f"cls_token, the first {length - 2} pieces, sep_token, then pad_token "
                       f"(id {tokenizer.pad_token_id}) up to {length} ids",
            "inputs": {"token_ids": "int32 [batch, length] token ids",
                       "padding_mask": "int32 [batch, length]: 1 on real tokens, 0 on padding",
                       "segment_ids": "int32 [batch, length]: all 0"},
        },
    }


def _token_feed(texts, folder):
    """Token arrays for raw texts, built by the export's own
    `tokenizer/wordpiece.py` rules from its `vocab.txt` in `folder`."""
    arrays = load_tokenizer(os.path.join(folder, TOKENIZER_DIR)).encode(
        [str(text) for text in texts])
    return {name: np.asarray(rows, dtype="int32") for name, rows in arrays.items()}


def tokenizer_assets(pipeline):
    """The `tokenizer/` assets of a text export: `vocab.txt`,
    `tokenizer_config.json` (Hugging Face `BertTokenizer` keys, and the
    exact rules under `keras_tl`) and `wordpiece.py`, the pure-Python
    tokenizer that feeds the converted classifier; none (`()`) when the
    pipeline's tokenizer is not one `wordpiece.py` reproduces.

    Example:
    >>> [a.path for a in tokenizer_assets(pipeline)]  # doctest: +SKIP
    ['tokenizer/vocab.txt', 'tokenizer/tokenizer_config.json', 'tokenizer/wordpiece.py']
    >>> tokenizer_assets(None)
    ()
    """
    settings = _wordpiece_settings(pipeline)
    if settings is None:
        return ()

    def vocabulary(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in pipeline.preprocessor.tokenizer.get_vocabulary()))

    def config(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=2, ensure_ascii=False)
            f.write("\n")

    folder = TOKENIZER_DIR
    return (Asset("vocabulary", f"{folder}/vocab.txt", vocabulary),
            Asset("tokenizer_config", f"{folder}/tokenizer_config.json", config),
            Asset("tokenizer_reference", f"{folder}/wordpiece.py",
                  lambda path: shutil.copyfile(wordpiece.__file__, path)))


def __getattr__(name):
    if name == "TextClassifierPipeline":  # defined beside Keras: this module imports none
        from keras_tl.tasks.text_pipeline import TextClassifierPipeline

        return TextClassifierPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
