"""The multi-label image classification task
(`keras_tl.tasks.multi_label_classifier`): recognising and reading its
data through the image input path, thresholds chosen on validation data,
predict and exports returning probabilities and the labels above them."""

import json
import os
import types

import numpy as np
import pytest

import keras_tl
from keras_tl.errors import ConfigError, DataError
from keras_tl.evaluation.multi_label import choose_thresholds, multi_label_metrics
from keras_tl.tasks import find_task, get_task
from tests import contract
from tests.helpers import tiny_backbone

TASK = "multi_label_image_classification"
NAMES = ["always", "red", "blue"]


def _tagged_images(count=24, size=16, seed=0):
    """Grey images with a red top half when tagged `red`, a blue bottom
    half when tagged `blue`; every image is tagged `always`."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((count, 3), "uint8")
    targets[:, 0] = 1
    targets[:, 1] = np.arange(count) % 2
    targets[:, 2] = (np.arange(count) // 2) % 2
    images = np.clip(rng.normal(100, 10, (count, size, size, 3)), 0, 255)
    half = size // 2
    images[:, :half, :, 0] += 120 * targets[:, 1, None, None]
    images[:, half:, :, 2] += 120 * targets[:, 2, None, None]
    return np.clip(images, 0, 255).astype("uint8"), targets


def _write_csv_data(folder, count=12, columns=False):
    """PNG files of `_tagged_images` and a labels.csv (a `;` label-list
    column, or one 0/1 column per class)."""
    from PIL import Image

    images, targets = _tagged_images(count)
    os.makedirs(folder, exist_ok=True)
    rows = ["file,always,red,blue" if columns else "file,labels"]
    for i, (image, row) in enumerate(zip(images, targets)):
        Image.fromarray(image).save(os.path.join(folder, f"{i:02d}.png"))
        if columns:
            rows.append(f"{i:02d}.png," + ",".join(str(v) for v in row))
        else:
            rows.append(f"{i:02d}.png," + ";".join(n for n, v in zip(NAMES, row) if v))
    with open(os.path.join(folder, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return images, targets


def test_its_data_is_recognised_and_other_data_is_not(tmp_path):
    _write_csv_data(tmp_path / "lists")
    _write_csv_data(tmp_path / "columns", columns=True)
    (tmp_path / "reviews.csv").write_text("text,label\ngreat tea,positive\n")
    images, targets = _tagged_images(6)
    for data in (str(tmp_path / "lists"), str(tmp_path / "lists" / "labels.csv"),
                 str(tmp_path / "columns" / "labels.csv"), (images, targets),
                 (images, [["red"], ["red", "blue"], [], ["blue"], ["red"], ["blue"]])):
        assert find_task(data).name == TASK, data
    one_hot = np.eye(3, dtype="uint8")[[0, 1, 2, 0, 1, 2]]
    assert find_task((images, one_hot)).name == "image_classification"
    assert find_task((images, [0, 1, 2, 0, 1, 2])).name == "image_classification"
    assert find_task(str(tmp_path / "reviews.csv")).name == "text_classification"
    # task= (CLI: --task) forces it
    assert find_task((images, one_hot), task=TASK).name == TASK


def test_the_command_line_has_its_flags():
    from keras_tl import cli

    args = cli.build_parser().parse_args(
        ["finetune", "tags.csv", "--task", TASK, "--no-thresholds", "--labels-column", "tags"])
    assert (args.task, args.thresholds, args.labels_column) == (TASK, False, "tags")


@pytest.mark.parametrize("columns", [False, True])
def test_csv_images_are_read_as_image_classification_reads_them(tmp_path, columns):
    images, targets = _write_csv_data(tmp_path / "data", count=6, columns=columns)
    loaded = types.SimpleNamespace(input_size=(16, 16))
    examples = get_task(TASK).read(str(tmp_path / "data"), loaded)
    # label lists: classes sorted; 0/1 columns: in the columns' order
    names = NAMES if columns else sorted(NAMES)
    assert examples.class_names == names
    order = [NAMES.index(name) for name in names]
    assert examples.labels.tolist() == targets[:, order].tolist()
    np.testing.assert_array_equal(examples.sample(6), images)  # PNG: lossless
    batches = list(get_task(TASK).dataset(examples, loaded, {}, 4).as_numpy_iterator())
    assert [x.shape for x, _ in batches] == [(4, 16, 16, 3), (2, 16, 16, 3)]
    assert batches[0][1].dtype == np.float32
    assert batches[0][1].tolist() == targets[:4, order].tolist()
    # the same pixels predict reads the files with
    files = sorted(str(p) for p in (tmp_path / "data").glob("*.png"))
    np.testing.assert_array_equal(
        get_task(TASK).prepare_inputs(files, {"input_size": [16, 16]}),
        get_task("image_classification").prepare_inputs(files, {"input_size": [16, 16]}))


def test_unreadable_and_unknown_data_are_named(tmp_path):
    _write_csv_data(tmp_path / "data", count=4)
    (tmp_path / "data" / "01.png").write_bytes(b"not a png")
    loaded = types.SimpleNamespace(input_size=(16, 16))
    with pytest.raises(DataError, match="01.png"):
        get_task(TASK).read(str(tmp_path / "data"), loaded)
    assert len(get_task(TASK).read(str(tmp_path / "data"), loaded, skip_corrupt=True)) == 3
    images, _ = _tagged_images(2)
    with pytest.raises(DataError, match="'green' .* training classes"):
        get_task(TASK).read((images, [["red"], ["green"]]), loaded, class_names=NAMES)


def _fixed_model(size=16):
    """A model whose class-k probability is a fixed function of channel k's
    mean pixel (no training): known scores for the threshold tests."""
    import keras

    inputs = keras.Input((size, size, 3))
    means = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Lambda(lambda m: keras.ops.sigmoid((m - 160.0) / 20.0))(means)
    return keras.Model(inputs, outputs)


def _batches(images, targets):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(
        (images.astype("float32"), targets.astype("float32"))).batch(5)


def test_thresholds_come_from_the_validation_data_and_change_predictions():
    # class 0's scores sit between 0.27 and 0.38, its positives highest: at
    # 0.5 it is never predicted, at its validation threshold it is
    rng = np.random.default_rng(0)
    targets = np.zeros((20, 3), "uint8")
    targets[:10, 0] = 1
    targets[::2, 1] = 1
    pixels = np.zeros((20, 16, 16, 3), "float32")
    pixels[:, :, :, 0] = np.where(targets[:, 0], 150, 140)[:, None, None] + rng.random((20, 1, 1))
    pixels[:, :, :, 1] = np.where(targets[:, 1], 190, 130)[:, None, None]
    pixels[:, :, :, 2] = 100
    test_targets = targets.copy()
    test_pixels = pixels - 8  # shifted: thresholds chosen on it would differ
    model, task = _fixed_model(), get_task(TASK)
    prepared = types.SimpleNamespace(
        model=model, class_names=NAMES, info={}, validation=_batches(pixels, targets),
        test=_batches(test_pixels, test_targets))
    scores = np.asarray(model.predict(pixels, verbose=0))
    metrics = task.fit_thresholds(prepared, {"validation": {"loss": 1.0}, "test": {"loss": 1.0}})

    expected = choose_thresholds(targets, scores).astype("float32").tolist()
    assert prepared.info["thresholds"] == pytest.approx(expected)
    assert expected[0] < 0.45 and expected[2] == 0.5  # class 2 has no positive: the default
    on_test = choose_thresholds(test_targets, np.asarray(model.predict(test_pixels, verbose=0)))
    assert not np.allclose(on_test, expected)
    measured = multi_label_metrics(targets, scores, np.float32(expected))
    assert metrics["validation"] == pytest.approx({"loss": 1.0, **measured})
    assert metrics["thresholds"]["values"]["always"] == pytest.approx(expected[0])
    assert metrics["calibration"]["temperature"] is None and metrics["calibration"]["skipped"]

    chosen = task.postprocess(scores, NAMES, info=prepared.info)
    default = task.postprocess(scores, NAMES, info={})
    assert all(["always" in dict(p["labels"]) for p in chosen[:10]])
    assert not any("always" in dict(p["labels"]) for p in default)
    assert chosen[0]["probabilities"]["always"] == pytest.approx(float(scores[0, 0]))
    # thresholds=False, or no validation data: 0.5 for every class, and why
    prepared.info = {}
    off = task.fit_thresholds(prepared, {"validation": None, "test": None}, choose=False)
    assert prepared.info["thresholds"] == [0.5, 0.5, 0.5] and "thresholds=False" in off[
        "thresholds"]["skipped"]


def _finetune(data, tmp_path, **options):
    return keras_tl.finetune(
        data, tiny_backbone(), batch_size=32, patience=0, verbose=0,
        stages=[keras_tl.Stage("fit", unfreeze="all", epochs=1, learning_rate=1e-3)],
        output_dir=str(tmp_path / "run"), **options)


@pytest.mark.core
def test_finetune_records_thresholds_metrics_and_predicts_a_label_every_image_has(tmp_path):
    images, targets = _tagged_images(24)
    result = _finetune((images[:16], targets[:16]), tmp_path, class_names=NAMES,
                       validation_data=(images[16:], targets[16:]))
    assert result.info["task"] == TASK
    assert result.model.get_layer("probabilities").activation.__name__ == "sigmoid"
    scores = np.asarray(result.model.predict(images[16:].astype("float32"), verbose=0))
    thresholds = result.info["thresholds"]
    assert thresholds == pytest.approx(choose_thresholds(targets[16:], scores).tolist(), abs=1e-6)
    assert thresholds[0] < 0.5  # `always`: the F1-best keeps every validation image

    with open(tmp_path / "run" / "metrics.json") as f:
        recorded = json.load(f)
    expected = multi_label_metrics(targets[16:], scores, np.float32(thresholds))
    for name in ("mAP", "micro_f1", "macro_f1"):
        assert recorded["validation"][name] == pytest.approx(expected[name], abs=1e-6)
    assert "calibration" in recorded and recorded["calibration"]["temperature"] is None
    with open(tmp_path / "run" / "run.json") as f:
        assert json.load(f)["info"]["thresholds"] == thresholds

    predictions = result.predict(images)
    assert all("always" in dict(p["labels"]) for p in predictions)
    assert sorted(predictions[0]["probabilities"]) == sorted(NAMES)
    reloaded = keras_tl.load(str(tmp_path / "run"))
    contract.assert_same_predictions(reloaded.predict(images), predictions, atol=1e-6)


def _csv_case():
    """The contract on a CSV of PNG files (as `keras-tl finetune tags.csv`
    reads it), predicting from the files' paths (as a client sends them)."""
    def data(tmp_path):
        if not (tmp_path / "tags" / "labels.csv").exists():
            _write_csv_data(tmp_path / "tags", count=16, columns=True)
        return str(tmp_path / "tags" / "labels.csv")

    def inputs(tmp_path):
        return [str(tmp_path / "tags" / f"{i:02d}.png") for i in (0, 5, 10, 15)]

    return contract.TaskCase(TASK, data=data, inputs=inputs,
                             options=dict(backbone=tiny_backbone()),
                             formats=("saved_model", "onnx", "litert"))


@pytest.mark.slow
def test_task_contract_and_exports_return_probabilities_and_labels(tmp_path):
    """`run_task_test` on CSV data (fit, reload, each format predicts what
    the run does, labels included: every export records the thresholds),
    then the SavedModel's signatures against the Keras model."""
    import tensorflow as tf

    from keras_tl.exporters import load_export

    case = _csv_case()
    seconds = contract.run_task_test(case, tmp_path)
    assert list(seconds) == ["fit", "save_load", "saved_model", "onnx", "litert"]
    run = keras_tl.load(str(tmp_path / "run"))
    assert run.class_names == NAMES and len(run.info["thresholds"]) == 3
    exported = [path for pattern in ("saved_model.pb", "*.onnx", "*.tflite")
                for path in (tmp_path / "export").rglob(pattern)]
    assert len(exported) >= 3
    for path in exported:
        path = path.parent if path.name == "saved_model.pb" else path
        assert load_export(str(path)).info["thresholds"] == run.info["thresholds"], path

    folder = next((tmp_path / "export" / "saved_model").rglob("saved_model.pb")).parent
    signatures = tf.saved_model.load(str(folder)).signatures
    images = run.task_contract.prepare_inputs(case.inputs(tmp_path), run.info)
    probabilities = np.asarray(run.model.predict(images, verbose=0))
    thresholds = np.float32(run.info["thresholds"])
    files = [open(path, "rb").read() for path in case.inputs(tmp_path)]
    for outputs in (signatures["serving_default"](images=tf.constant(images)),
                    signatures["serving_bytes"](image_bytes=tf.constant(files))):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), probabilities, atol=1e-5)
        np.testing.assert_array_equal(outputs["labels"].numpy(), probabilities >= thresholds)


def test_onnx_and_litert_return_the_saved_models_labels(tmp_path):
    """ONNX and LiteRT convert a graph returning `labels` too (0/1 per
    class, the run's thresholds constants in it): on the verification
    images they equal the SavedModel's, and `predict` reads every format."""
    from keras_tl.exporters import load_export

    images, targets = _tagged_images(24)
    result = _finetune((images[:16], targets[:16]), tmp_path, class_names=NAMES,
                       validation_data=(images[16:], targets[16:]))
    inputs = result.task_contract.prepare_inputs(images, result.info)
    probabilities = np.sort(np.asarray(result.model.predict(inputs, verbose=0), "float32"), 0)
    # thresholds between the 12th and 13th probability of each class: half the labels on
    result.info["thresholds"] = [float(t) for t in (probabilities[11] + probabilities[12]) / 2]
    exported = keras_tl.export(result, str(tmp_path / "export"),
                               formats=["saved_model", "onnx", "litert"],
                               verification_inputs=images)
    labels = {}
    for key in ("saved_model", "onnx", "litert_float32"):
        loaded = load_export(exported.files[key])
        outputs = loaded.outputs(inputs)
        assert sorted(outputs) == ["labels", "probabilities"], key
        labels[key] = np.asarray(outputs["labels"])
        assert labels[key].dtype == np.int64, key
        assert ([[name for name, _ in p["labels"]] for p in loaded.predict(images)]
                == [[name for name, _ in p["labels"]] for p in result.predict(images)]), key
    assert labels["saved_model"].sum(axis=0).tolist() == [12, 12, 12]
    for key in ("onnx", "litert_float32"):
        np.testing.assert_array_equal(labels[key], labels["saved_model"], err_msg=key)


def test_finetune_refuses_class_weight_before_training(tmp_path):
    images, targets = _tagged_images(12)
    for class_weight in ("balanced", {0: 1.0, 1: 2.0}):
        with pytest.raises(ConfigError, match="leave class_weight unset"):
            _finetune((images, targets), tmp_path, class_names=NAMES, class_weight=class_weight)
    assert not tmp_path.joinpath("run").exists()
