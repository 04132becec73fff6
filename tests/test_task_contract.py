"""The checks every task must pass, whatever its modality (like keras-hub's
`run_task_test`): prepare its data, freeze and unfreeze its backbone by
stage, save and reload its model, and keep its serving contract."""

import numpy as np
import pytest

import keras_tl
from keras_tl.freezing import get_backbone
from keras_tl.tasks import get_task, list_tasks
from keras_tl.training.stages import Stage
from tests.helpers import colour_arrays
from tests.test_object_detection_task import _voc_folder
from tests.test_text_helpers import sentiment_texts, tiny_preset  # noqa: F401


def _image(tmp_path, preset):
    x, y, names = colour_arrays(per_class=6, size=32)
    return (x, y), dict(backbone="mobilenet_v2", weights=None, image_size=32, class_names=names)


def _text(tmp_path, preset):
    return sentiment_texts(8), dict(backbone=preset, sequence_length=16)


def _keywords(tmp_path, preset):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1000, (12, 16000)).astype("float32")
    return (x, ["yes", "no"] * 6), dict(weights=None)


def _detection(tmp_path, preset):
    return _voc_folder(tmp_path / "voc", count=8), dict(backbone="mobilenet_v2", weights=None,
                                                        image_size=64)


DATA = {"image_classification": _image, "text_classification": _text,
        "keyword_spotting": _keywords, "object_detection": _detection}


def test_every_registered_task_has_a_contract_case():
    assert sorted(DATA) == sorted(list_tasks())


def _weights(layer):
    return [np.array(w) for w in layer.trainable_weights]


@pytest.mark.core
@pytest.mark.parametrize("name", sorted(DATA))
def test_task_contract(name, tmp_path, tiny_preset):  # noqa: F811
    task = get_task(name)
    data, options = DATA[name](tmp_path, tiny_preset)
    assert keras_tl.tasks.find_task(data, options.get("backbone")).name == name
    prepared = task.prepare(data, batch_size=4, validation_split=0.25, **options)
    assert prepared.info["task"] == name and prepared.info["modality"] == task.modality
    assert prepared.validation is not None and prepared.sample is not None
    model, backbone = prepared.model, get_backbone(prepared.model)

    # frozen stage: nothing of the backbone trains, the head does
    prepared.apply_stage(model, Stage("head"))
    assert not backbone.trainable_weights
    assert model.trainable_weights
    # unfrozen stage (the default's, maybe a fraction of the blocks): the
    # backbone trains too (BatchNorm statistics never do)
    prepared.apply_stage(model, task.default_stages()[-1])
    assert backbone.trainable_weights
    assert not any("moving" in w.path for w in model.trainable_weights)

    # save and reload: the same outputs
    import keras

    served_model = prepared.inference_model or model  # raw inputs in (a text pipeline)
    sample = prepared.sample[:2]
    spec = task.export_spec(served_model, prepared.info, prepared.class_names, sample)
    path = tmp_path / "model.keras"
    served_model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    after = task.export_spec(reloaded, prepared.info, prepared.class_names, sample).model_outputs
    for key, before in spec.model_outputs.items():
        np.testing.assert_allclose(after[key], before, atol=1e-5, err_msg=key)

    # the serving contract documents exactly the signatures the SavedModel gets
    contract = spec.contract()
    assert list(contract)[0] == "serving_default"
    # the spec read back without a model (keras-tl predict) has the same contract
    assert task.export_spec(None, spec.info, prepared.class_names).contract() == contract
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for signature in spec.signatures:
            function = signature.function()
            if hasattr(function, "get_concrete_function"):  # a tf.function with its signature
                function = function.get_concrete_function()
            assert sorted(function.structured_outputs) == sorted(signature.outputs), \
                signature.name
            input_names = [t.name for t in tf.nest.flatten(function.structured_input_signature)]
            assert sorted(input_names) == sorted(signature.inputs), signature.name
