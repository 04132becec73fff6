"""Every registered task on the contract of tests/contract.py (one fit step,
save/load of the run, an export round trip per format), plus the freezing
and serving-signature checks every task must pass.

One fit per task is shared by its cases. The core suite exports one format
per task (the SavedModel: every export writes it), except the detector's;
the other formats are `slow`.
"""

import glob
import os

import numpy as np
import pytest

import keras_tl
from keras_tl.freezing import get_backbone
from keras_tl.tasks import get_task, list_tasks
from keras_tl.training.stages import Stage
from tests import contract
from tests.helpers import (
    colour_arrays,
    sentiment_texts,
    tiny_backbone,
    tiny_pyramid_backbone,
    voc_folder,
)


def _image_case(preset):
    x, y, names = colour_arrays(per_class=6, size=16)
    return contract.TaskCase(
        "image_classification", data=lambda tmp_path: (x, y), inputs=lambda tmp_path: x[::5],
        options=dict(backbone=tiny_backbone(), class_names=names),
        formats=("saved_model", "onnx", "litert"))


def _text_case(preset):
    texts, labels = sentiment_texts(8)
    return contract.TaskCase(
        "text_classification", data=lambda tmp_path: (texts, labels),
        inputs=lambda tmp_path: ["This tea was great!", "awful stale coffee", texts[0]],
        options=dict(backbone=preset, sequence_length=16), formats=("saved_model", "onnx"))


def _keyword_case(preset):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1000, (12, 16000)).astype("float32")
    return contract.TaskCase(
        "keyword_spotting", data=lambda tmp_path: (x, ["yes", "no"] * 6),
        inputs=lambda tmp_path: x[:3], options=dict(backbone="speech_embedding", weights=None),
        formats=("saved_model", "onnx", "litert"))


def _detection_case(preset):
    def data(tmp_path):
        return voc_folder(tmp_path / "voc", count=8)

    def inputs(tmp_path):  # files, as a client sends them
        return sorted(glob.glob(os.path.join(tmp_path, "voc", "JPEGImages", "*.png")))[:2]

    return contract.TaskCase(
        "object_detection", data=data, inputs=inputs,
        options=dict(backbone=tiny_pyramid_backbone(), image_size=64),
        formats=("saved_model", "onnx", "litert"))


def _multi_label_case(preset):
    x, y, names = colour_arrays(per_class=6, size=16)
    targets = np.stack([y == 0, y != 1, np.ones_like(y)], axis=1).astype("uint8")  # 1-3 labels
    return contract.TaskCase(
        "multi_label_image_classification", data=lambda tmp_path: (x, targets),
        inputs=lambda tmp_path: x[::5],
        options=dict(backbone=tiny_backbone(), class_names=["red", "not_green", "any"]),
        formats=("saved_model", "onnx", "litert"))


CASES = {"image_classification": _image_case, "text_classification": _text_case,
         "keyword_spotting": _keyword_case, "object_detection": _detection_case,
         "multi_label_image_classification": _multi_label_case}
CORE_FORMAT = "saved_model"
# its fit and SavedModel export take most of a minute each on a shared 2-core machine
SLOW_EXPORTS = ("object_detection",)


def test_every_registered_task_has_a_contract_case():
    assert sorted(CASES) == sorted(list_tasks())


@pytest.fixture(scope="module")
def fitted(request, tiny_preset, tmp_path_factory):
    """`{task: (case, reloaded run, inputs, tmp_path, seconds)}`, one fit each, on demand."""
    runs = {}

    def get(name):
        if name not in runs:
            import time

            case = CASES[name](tiny_preset)
            tmp_path = tmp_path_factory.mktemp(name)
            start = time.perf_counter()
            result = contract.fit_one_step(case, tmp_path)
            inputs = case.inputs(tmp_path)
            reloaded = contract.check_save_load(result, inputs)
            runs[name] = case, reloaded, inputs, tmp_path, time.perf_counter() - start
        return runs[name]

    return get


@pytest.mark.core
@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_one_step_and_reload(name, fitted, record_property):
    record_property("fit_and_reload_seconds", round(fitted(name)[-1], 1))


def _export_cases():
    for name in sorted(CASES):
        for fmt in CASES[name](None).formats:
            core = fmt == CORE_FORMAT and name not in SLOW_EXPORTS
            marks = [pytest.mark.core] if core else [pytest.mark.slow]
            yield pytest.param(name, fmt, marks=marks, id=f"{name}-{fmt}")


@pytest.mark.parametrize("name, fmt", _export_cases())
def test_export_round_trip(name, fmt, fitted):
    case, reloaded, inputs, tmp_path, _ = fitted(name)
    contract.check_export(reloaded, fmt, inputs, tmp_path)


@pytest.mark.core
@pytest.mark.parametrize("name", sorted(CASES))
def test_stages_freeze_and_unfreeze_the_backbone(name, tiny_preset, tmp_path):
    """A frozen stage trains the head only; the task's last default stage
    trains the backbone too; BatchNorm statistics never train."""
    case = CASES[name](tiny_preset)
    task = get_task(name)
    options = {key: value for key, value in case.options.items() if key != "backbone"}
    prepared = task.prepare(case.data(tmp_path), case.options["backbone"], batch_size=4,
                            validation_split=0.25, **options)
    model, backbone = prepared.model, get_backbone(prepared.model)
    prepared.apply_stage(model, Stage("head"))
    assert not backbone.trainable_weights and model.trainable_weights
    prepared.apply_stage(model, task.default_stages()[-1])
    assert backbone.trainable_weights
    assert not any("moving" in w.path for w in model.trainable_weights)


@pytest.mark.core
@pytest.mark.parametrize("name", sorted(CASES))
def test_serving_contract_lists_the_saved_model_signatures(name, fitted):
    """The documented contract names exactly the signatures (and their
    outputs) the SavedModel gets."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the serving functions are TensorFlow functions")
    case, reloaded, inputs, tmp_path, _ = fitted(name)
    task = reloaded.task_contract
    spec = task.export_spec(reloaded.inference_model, reloaded.info, reloaded.class_names)
    contract_ = spec.contract()
    assert list(contract_)[0] == "serving_default"
    # the spec read back without a model (keras-tl predict) has the same contract
    assert task.export_spec(None, spec.info, reloaded.class_names).contract() == contract_
    import tensorflow as tf

    assert [signature.name for signature in spec.signatures] == list(contract_)
    for signature in spec.signatures:
        function = signature.function()
        if hasattr(function, "get_concrete_function"):  # a tf.function with its signature
            function = function.get_concrete_function()
        assert sorted(function.structured_outputs) == sorted(signature.outputs), signature.name
        input_names = [t.name for t in tf.nest.flatten(function.structured_input_signature)]
        assert sorted(input_names) == sorted(signature.inputs), signature.name

@pytest.mark.slow  # a SavedModel export and a TensorFlow-only replay per task
@pytest.mark.parametrize("name", sorted(CASES))
def test_tf_serving_files_of_every_task(name, fitted):
    """Every task's export gets TF Serving's configs, a warm-up file that
    replays to the SavedModel's outputs, and a model card."""
    from tests.tf_serving_helpers import assert_export_for_tf_serving

    case, reloaded, inputs, tmp_path, _ = fitted(name)
    exported = keras_tl.export(reloaded, str(tmp_path / "tf_serving" / name),
                               formats=["saved_model"])
    assert_export_for_tf_serving(exported, reloaded)


def test_run_task_test_runs_the_whole_contract_in_one_call(tiny_preset, tmp_path):
    seconds = contract.run_task_test(CASES["image_classification"](tiny_preset), tmp_path,
                                     formats=["saved_model"])
    assert list(seconds) == ["fit", "save_load", "saved_model"]
    assert keras_tl.load(str(tmp_path / "run")).info["task"] == "image_classification"

