"""Text export: a SavedModel taking raw strings and ONNX on token ids, each
checked in a fresh process against the Keras model; versions never overwritten."""

import json
import os

import numpy as np
import pytest

from keras_tl.tasks import get_task
from tests.test_text_helpers import sentiment_texts, tiny_preset  # noqa: F401


@pytest.fixture(scope="module")
def task(tiny_preset):  # noqa: F811
    return get_task("text_classification").prepare(sentiment_texts(8), tiny_preset, sequence_length=16, batch_size=8)


def test_string_saved_model_and_onnx(task, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from keras_tl.export.text import export_text

    base = str(tmp_path / "saved_models" / "reviews")
    result = export_text(task, base)
    assert result.version == 1 and result.path == os.path.join(base, "1")
    for key in ("saved_model", "onnx"):
        check = result.verification[key]
        assert check["max_abs_diff"] < 1e-5 and check["top_class_match"]
        assert check["fresh_process_imported"] == []  # no keras_tl/keras_hub there
    names = sorted(os.listdir(result.path))
    assert {"saved_model.pb", "model.onnx", "vocabulary.txt", "tokenizer.json",
            "keras_tl.json"} <= set(names)
    assert not [n for n in os.listdir(base) if n.startswith(".tmp")]

    texts = ["This tea was great", "awful coffee", ""]
    signature = tf.saved_model.load(result.path).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["texts"]
    out = signature(texts=tf.constant(texts))
    expected = task.inference_model.predict(texts)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert out["class_ids"].dtype == tf.int64
    assert [n.decode() for n in out["class_names"].numpy()] == [
        task.class_names[i] for i in expected.argmax(-1)]

    with open(result.files["tokenizer"]) as f:
        tokenizer = json.load(f)
    assert tokenizer["sequence_length"] == 16 and tokenizer["special_token_ids"]["cls_token"] == 2
    with open(result.files["vocabulary"]) as f:
        assert f.read().split("\n")[:3] == ["[PAD]", "[UNK]", "[CLS]"]
    with open(result.files["metadata"]) as f:
        meta = json.load(f)
    assert meta["modality"] == "text" and meta["input"]["name"] == "texts"

    from keras_tl.export.text import predict_texts

    (text, top), = predict_texts(base, ["This tea was great"], top=2)
    assert text == "This tea was great" and len(top) == 2
    assert top[0][0] == task.class_names[int(expected[0].argmax())]

    again = export_text(task.inference_model, base, formats=("saved_model",))
    assert again.version == 2 and "onnx" not in again.files
    with pytest.raises(FileExistsError, match="never overwrite"):
        export_text(task, base, version=1)


def test_export_refuses_non_text_models(tmp_path):
    from keras_tl.export.text import export_text

    with pytest.raises(TypeError, match="text classifier"):
        export_text(object(), str(tmp_path / "m"))
