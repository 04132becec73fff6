"""`TextClassifierPipeline`: a text classifier with its tokenizer, a Keras
model whose `predict` takes raw strings (the text task's `inference_model`).

Its own module, so that `keras_tl.tasks.text_classifier` imports no Keras.
"""

import keras


@keras.saving.register_keras_serializable(package="keras_tl")
class TextClassifierPipeline(keras.Model):
    """A text classifier with its tokenizer: `predict` takes raw strings.

    `call` takes the tokenizer's arrays (like the wrapped classifier);
    `predict(texts)` tokenizes in batches first, on every backend. Saved as
    `.keras` with its vocabulary (load it after `import keras_tl`).

    Example:
    >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> from keras_tl.tasks.text_classifier import build_text_classifier
    >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
    >>> model = build_text_classifier(encoder, num_classes=2)
    >>> pipeline = TextClassifierPipeline(model, encoder.preprocessor, ["neg", "pos"])
    >>> pipeline.predict(["great value", "stale and bland"]).shape
    (2, 2)
    """

    def __init__(self, classifier, preprocessor, class_names, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.preprocessor = preprocessor
        self.class_names = [str(n) for n in class_names]
        self.built = True

    def call(self, inputs, training=False):
        return self.classifier(inputs, training=training)

    def tokenize(self, texts, batch_size=512):
        """Int32 arrays for `texts`, keyed like the classifier's inputs.

        Example:
        >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> from keras_tl.tasks.text_classifier import build_text_classifier
        >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
        >>> model = build_text_classifier(encoder, num_classes=2)
        >>> pipeline = TextClassifierPipeline(model, encoder.preprocessor, ["neg", "pos"])
        >>> pipeline.tokenize(["hello"])["token_ids"].shape  # sequence_length 8
        (1, 8)
        """
        import numpy as np

        texts = _as_text_list(texts)
        wanted = sorted(self.classifier.input) if isinstance(self.classifier.input, dict) else None
        parts = {}
        for start in range(0, len(texts), batch_size):
            batch = self.preprocessor(texts[start:start + batch_size])
            for key in wanted or batch:
                parts.setdefault(key, []).append(np.asarray(batch[key]).astype("int32"))
        return {key: np.concatenate(arrays) for key, arrays in parts.items()}

    def predict(self, x, batch_size=32, verbose=0, **kwargs):
        """Class probabilities for raw strings (or already tokenized arrays).

        Example:
        >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> from keras_tl.tasks.text_classifier import build_text_classifier
        >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
        >>> model = build_text_classifier(encoder, num_classes=2)
        >>> pipeline = TextClassifierPipeline(model, encoder.preprocessor, ["neg", "pos"])
        >>> probabilities = pipeline.predict(["tasty", "awful"])
        >>> probabilities.shape, np.allclose(probabilities.sum(axis=-1), 1)
        ((2, 2), True)
        """
        import numpy as np

        from keras_tl.data.text import length_batches

        if not isinstance(x, dict):
            x = self.tokenize(x)
        outputs = None
        for idx, batch in length_batches(x, batch_size):
            part = np.asarray(self.classifier.predict_on_batch(batch))
            if outputs is None:
                outputs = np.zeros((len(x["padding_mask"]),) + part.shape[1:], part.dtype)
            outputs[idx] = part
        return outputs

    def classify(self, texts, batch_size=32):
        """The predicted class name of each text.

        Example:
        >>> from keras_tl.backbones.text_encoders import load_text_encoder
    >>> from keras_tl.tasks.text_classifier import build_text_classifier
        >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
        >>> model = build_text_classifier(encoder, num_classes=2)
        >>> pipeline = TextClassifierPipeline(model, encoder.preprocessor, ["neg", "pos"])
        >>> model.get_layer("probabilities").set_weights(  # a head that always says "pos"
        ...     [np.zeros((384, 2)), np.array([0.0, 1.0])])
        >>> pipeline.classify(["tasty", "awful"])
        ['pos', 'pos']
        """
        probabilities = self.predict(texts, batch_size=batch_size)
        return [self.class_names[i] for i in probabilities.argmax(axis=-1)]

    def with_classifier(self, classifier):
        """A pipeline with the same tokenizer, class names and name around
        another `classifier` (e.g. the calibrated one).

        Example:
        >>> from keras_tl.backbones.text_encoders import load_text_encoder
        >>> from keras_tl.tasks.text_classifier import build_text_classifier
        >>> encoder = load_text_encoder(sequence_length=8, weights=None)  # random MiniLM, fast
        >>> pipeline = TextClassifierPipeline(build_text_classifier(encoder, 2),
        ...                                   encoder.preprocessor, ["neg", "pos"], name="text")
        >>> other = build_text_classifier(encoder, 2, name="other")
        >>> pipeline.with_classifier(other).classifier.name, pipeline.with_classifier(other).name
        ('other', 'text')
        """
        return TextClassifierPipeline(classifier, self.preprocessor, self.class_names,
                                      name=self.name)

    def get_config(self):
        config = super().get_config()
        config.update(
            classifier=_without_compile(keras.saving.serialize_keras_object(self.classifier)),
            preprocessor=keras.saving.serialize_keras_object(self.preprocessor),
            class_names=self.class_names,
        )
        return config

    @classmethod
    def from_config(cls, config):
        import keras_hub  # noqa: F401  (registers the encoder and tokenizer classes)

        config = dict(config)
        classifier = keras.saving.deserialize_keras_object(config.pop("classifier"))
        preprocessor = keras.saving.deserialize_keras_object(config.pop("preprocessor"))
        return cls(classifier, preprocessor, **config)


def _without_compile(config):
    config.pop("compile_config", None)  # the pipeline is for inference
    return config


def _as_text_list(texts):
    import numpy as np

    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string: predict([text]).")
    texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in np.asarray(texts, object).reshape(-1)]
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("Texts must be strings.")
    return texts
