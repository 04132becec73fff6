"""Text encoders, the classifier, freezing per stage, LoRA, the raw-string
pipeline, on a tiny 2-layer BERT with a local vocabulary."""

import json
import os

import numpy as np
import pytest

from keras_tl.tasks import get_task

from keras_tl.backbones.text_encoders import is_text_backbone, load_text_encoder
from keras_tl.freezing import get_backbone, trainable_summary
from keras_tl.tasks.text_classifier import (
    TextClassifierPipeline,
    apply_text_stage,
    build_text_classifier,
    default_text_stages,
)
from keras_tl.training.stages import Stage
from tests.helpers import sentiment_texts, tiny_bert


def _counts(model):
    return {row["block"]: (row["trainable"], row["non_trainable"])
            for row in trainable_summary(model)}


def _size(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def task(tiny_preset):
    return get_task("text_classification").prepare(sentiment_texts(12), tiny_preset, sequence_length=16,
                             batch_size=8, seed=0)


@pytest.mark.core
def test_preset_folder_loads_encoder_and_tokenizer(tiny_preset):
    encoder = load_text_encoder(tiny_preset, sequence_length=16)
    assert encoder.model.name == "backbone"
    assert encoder.input_names == ["padding_mask", "segment_ids", "token_ids"]
    assert type(encoder.tokenizer).__name__ == "BertTokenizer"
    assert encoder.preprocessor(["good tea"])["token_ids"].shape == (1, 16)
    assert is_text_backbone(tiny_preset) and is_text_backbone("minilm")
    assert not is_text_backbone("resnet50")


@pytest.mark.core
def test_task_tokenizes_and_splits(task):
    assert task.class_names == ["negative", "positive"]
    assert task.info["modality"] == "text" and task.info["sequence_length"] == 16
    assert (task.info["num_train"], task.info["num_validation"]) == (20, 4)
    features, labels = next(iter(task.train))
    assert sorted(features) == ["padding_mask", "segment_ids", "token_ids"]
    assert features["token_ids"].shape[1] in (4, 8, 12, 16) and labels.dtype.name == "int32"
    assert sum(int(y.shape[0]) for _, y in task.train) == 20
    assert task.model.get_layer("probabilities").units == 2


@pytest.mark.core
def test_freezing_counts_per_stage(tiny_preset):
    model = build_text_classifier(load_text_encoder(tiny_preset, 16), 3)
    backbone = get_backbone(model)
    layer_size = _size(backbone.get_layer("transformer_layer_0").weights)
    embeddings = sum(_size(backbone.get_layer(n).weights) for n in
                     ("token_embedding", "position_embedding", "segment_embedding",
                      "embeddings_layer_norm"))
    pooler = _size(backbone.get_layer("pooled_dense").weights)
    head = 16 * 3 + 3

    head_stage, finetune = default_text_stages()
    apply_text_stage(model, head_stage)
    assert _counts(model) == {"embeddings": (0, embeddings), "transformer_layer_0": (0, layer_size),
                              "transformer_layer_1": (0, layer_size), "top": (0, pooler),
                              "head": (head, 0)}
    apply_text_stage(model, Stage("top1", unfreeze=1))
    counts = _counts(model)
    assert counts["transformer_layer_0"] == (0, layer_size)
    assert counts["transformer_layer_1"] == (layer_size, 0)
    assert counts["embeddings"] == (0, embeddings)
    apply_text_stage(model, finetune)  # "all": embeddings and unused pooler stay frozen
    counts = _counts(model)
    assert counts["transformer_layer_0"] == counts["transformer_layer_1"] == (layer_size, 0)
    assert counts["embeddings"] == (0, embeddings) and counts["top"] == (0, pooler)
    assert _size(model.trainable_weights) == 2 * layer_size + head
    apply_text_stage(model, finetune, train_embeddings=True)
    assert _counts(model)["embeddings"] == (embeddings, 0)
    apply_text_stage(model, Stage("from", unfreeze="transformer_layer_1"))
    assert _counts(model)["transformer_layer_0"] == (0, layer_size)
    with pytest.raises(ValueError, match="no layer named 'block9'"):
        apply_text_stage(model, Stage("bad", unfreeze="block9"))


@pytest.mark.core
def test_lora_trains_only_adapters(tiny_preset):
    model = build_text_classifier(load_text_encoder(tiny_preset, 16), 2)
    rank = 2
    stage = default_text_stages(lora_rank=rank)[1]
    assert stage.lora_rank == rank and stage.unfreeze is None
    apply_text_stage(model, stage)
    counts = _counts(model)
    # per layer: query and value each get A (hidden x heads x rank) and
    # B (rank x head_dim) adapters; their biases train too (keras_hub).
    hidden, heads, head_dim = 16, 2, 8
    per_layer = 2 * (hidden * heads * rank + rank * head_dim + heads * head_dim)
    assert counts["transformer_layer_0"][0] == counts["transformer_layer_1"][0] == per_layer
    assert counts["embeddings"][0] == 0 and counts["head"] == (16 * 2 + 2, 0)
    assert _size(model.trainable_weights) == 2 * per_layer + 34
    apply_text_stage(model, stage)  # again (resume): same adapters, same counts
    assert _counts(model) == counts
    with pytest.raises(ValueError, match="already enabled with rank 2"):
        apply_text_stage(model, Stage("lora4", lora_rank=4))
    apply_text_stage(model, Stage("frozen"))
    assert _size(model.trainable_weights) == 34


@pytest.mark.core
def test_backbone_object_with_tokenizer_and_pooled_head():
    backbone, tokenizer = tiny_bert()
    encoder = load_text_encoder(backbone, sequence_length=8, tokenizer=tokenizer)
    model = build_text_classifier(encoder, 2, pooling="pooled")
    assert "pool" not in [layer.name for layer in model.layers]
    apply_text_stage(model, Stage("all", unfreeze="all"), pooling="pooled")
    assert _counts(model)["top"][1] == 0  # the pooler trains with pooled output


def test_training_then_raw_string_pipeline_roundtrip(task, tmp_path):
    import keras

    task.apply_stage(task.model, Stage("all", unfreeze="all"))
    task.model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    history = task.model.fit(task.train, validation_data=task.validation, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    pipeline = task.inference_model
    assert isinstance(pipeline, TextClassifierPipeline)
    texts = ["This tea was great", "awful coffee"]
    probabilities = pipeline.predict(texts)
    assert probabilities.shape == (2, 2)
    # the text decides the output, and classify names each row's most
    # probable class (two epochs do not reliably learn the opinions: not asserted)
    assert not np.allclose(probabilities[0], probabilities[1], atol=1e-6)
    assert list(pipeline.classify(texts)) == [
        task.class_names[i] for i in probabilities.argmax(axis=1)]
    path = str(tmp_path / "pipeline.keras")
    pipeline.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(texts), probabilities, atol=1e-6)
    with pytest.raises(TypeError, match="not a single string"):
        pipeline.predict("one text")


@pytest.mark.core
def test_bad_encoder_folders(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_text_encoder(str(tmp_path))
    image = tmp_path / "resnet"
    image.mkdir()
    (image / "config.json").write_text(json.dumps({
        "module": "keras_hub.src.models.resnet.resnet_backbone", "class_name": "ResNetBackbone",
        "config": {"stackwise_num_filters": [8]}, "registered_name": "keras_hub>ResNetBackbone"}))
    with pytest.raises(ValueError, match=r"not a text encoder \(ResNetBackbone\)"):
        load_text_encoder(str(image))
    assert not is_text_backbone(str(image))


@pytest.mark.core
def test_sequence_length_and_weights_checks(tiny_preset):
    with pytest.raises(ValueError, match="exceeds the encoder's maximum of 32"):
        load_text_encoder(tiny_preset, sequence_length=64)
    with pytest.raises(ValueError, match="weights='default' or None"):
        get_task("text_classification").prepare(sentiment_texts(4), tiny_preset, weights="imagenet")
    encoder = load_text_encoder(tiny_preset, 16, weights=None)
    assert encoder.weights == "None"


@pytest.mark.core
def test_default_encoder_is_found_offline():
    from keras_tl.backbones.text_encoders import default_text_encoder_path

    folder = default_text_encoder_path()
    assert os.path.exists(os.path.join(folder, "config.json"))
    assert os.path.exists(os.path.join(folder, "vocab.txt"))
