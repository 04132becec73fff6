"""The pictures beside a run and from `keras-tl predict --draw`, read as a
person would: each image at its own aspect ratio, boxes labelled, counts and
accuracies stated, every class name drawn or warned about."""

import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.patches import Rectangle
from matplotlib.text import Text

import keras_tl
from keras_tl import reports
from keras_tl.cli import _draw
from keras_tl.tasks import get_task
from tests.helpers import colour_arrays, tiny_backbone


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the reports write, still inspectable after saving."""
    figures = {}
    save = reports.save_figure

    def keep(fig, path, **kwargs):
        figures[path] = fig
        save(fig, path, **kwargs)

    monkeypatch.setattr(reports, "save_figure", keep)
    return figures


def _texts(ax):
    return [t.get_text() for t in ax.findobj(Text) if t.get_text()]


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_images()]


class _FixedDetector:
    """A detector's NMS outputs for two 64x64 inputs: one box on the
    first, nothing on the second."""

    def predict(self, images, verbose=0):
        assert images.shape == (2, 64, 64, 3)
        return {"boxes": np.array([[[8.0, 8.0, 24.0, 40.0]], [[-1, -1, -1, -1]]]),
                "scores": np.array([[0.9], [-1.0]]), "class_ids": np.array([[1], [-1]])}


def _detector_result():
    record = dict(image="wide.png", width=128, height=64, boxes=[[8.0, 8.0, 24.0, 40.0]],
                  class_ids=[1])
    return types.SimpleNamespace(
        histories={"head": {"loss": [2.3], "val_loss": [2.2], "learning_rate": [1e-3]},
                   "finetune": {"loss": [1.9, 1.5], "val_loss": [2.0, 1.8],
                                "learning_rate": [1e-4, 5e-5]}},
        metrics={"validation": {"loss": 1.8, "map": 0.42, "map_50": 0.7, "map_75": 0.38,
                                "per_class_ap": {"cat": 0.4, "dog": 0.44}}, "test": None},
        verification_sample=np.full((2, 64, 64, 3), 128.0), model=_FixedDetector(),
        class_names=["cat", "dog"],
        info={"validation_records": [record, dict(record, image="empty.png", boxes=[],
                                                  class_ids=[])]})


def test_detections_png_keeps_the_photos_aspect_and_labels_every_box(tmp_path, saved_figures):
    get_task("object_detection").write_reports(_detector_result(), str(tmp_path))
    fig = saved_figures[str(tmp_path / "detections.png")]
    first, second = _image_axes(fig)
    # the 128x64 photo, resized to the 64x64 input, is drawn 128 wide and 64 high again
    image, = first.get_images()
    assert image.get_extent() == [0, 128, 64, 0]
    # its boxes too: the prediction at x 8-24 of the input is at 16-48 of the photo
    predicted = [p for p in first.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in predicted] == [
        (16.0, 8.0, 32.0, 32.0)]
    assert "dog 0.90" in _texts(first)  # class and score
    assert "dog" in _texts(first)  # the true box's class
    assert first.get_title() == "wide.png: 1 true, 1 predicted"
    assert second.get_title() == "empty.png: 0 true, 0 predicted"
    assert "no predictions" in _texts(second)


def test_the_detectors_training_curves_show_map_and_loss_on_a_log_axis(tmp_path,
                                                                      saved_figures):
    get_task("object_detection").write_reports(_detector_result(), str(tmp_path))
    fig = saved_figures[str(tmp_path / "training_curves.png")]
    assert [ax.get_title() for ax in fig.axes] == ["loss", "after training"]
    loss, scores = fig.axes
    assert loss.get_yscale() == "log"
    # both stages named over their epochs
    assert {"head", "finetune"} <= set(_texts(loss))
    assert [t.get_text() for t in scores.get_xticklabels()] == ["mAP", "mAP@.5", "mAP@.75"]
    heights = [round(bar.get_height(), 3) for bar in scores.patches
               if isinstance(bar, Rectangle)]
    assert heights == [0.42, 0.7, 0.38]


def test_a_classifiers_curves_keep_the_accuracy_panel_and_a_log_loss(tmp_path, saved_figures):
    histories = {"head": {"loss": [0.9, 0.6], "val_loss": [0.8, 0.7],
                          "accuracy": [0.5, 0.7], "val_accuracy": [0.6, 0.65]}}
    reports.plot_training_curves(histories, str(tmp_path / "curves.png"))
    loss, accuracy = saved_figures[str(tmp_path / "curves.png")].axes
    assert (loss.get_title(), accuracy.get_title()) == ("loss", "accuracy")
    assert (loss.get_yscale(), accuracy.get_yscale()) == ("log", "linear")
    assert [list(line.get_ydata()) for line in accuracy.get_lines()] == [[0.5, 0.7],
                                                                          [0.6, 0.65]]


def test_predict_draw_titles_each_image_with_its_file_name_and_count(tmp_path, saved_figures):
    from PIL import Image

    paths = [tmp_path / "street view.png", tmp_path / "empty.png"]
    for path in paths:
        Image.fromarray(np.zeros((40, 80, 3), "uint8")).save(path)
    found = [{"class_name": "car", "score": 0.81, "box": [10.0, 5.0, 30.0, 25.0]},
             {"class_name": "bus", "score": 0.1, "box": [40.0, 5.0, 70.0, 25.0]}]
    _draw([str(p) for p in paths], [found, []], str(tmp_path / "drawn"))
    street = saved_figures[str(tmp_path / "drawn" / "street view_boxes.png")]
    ax, = _image_axes(street)
    assert ax.get_title() == "street view.png: 1 detection"  # the 0.1 one is not drawn
    assert ax.get_images()[0].get_extent() == [0, 80, 40, 0]
    assert "car 0.81" in _texts(ax)
    assert street.get_suptitle() == ""  # the validation report's title is not reused
    ax, = _image_axes(saved_figures[str(tmp_path / "drawn" / "empty_boxes.png")])
    assert ax.get_title() == "empty.png: 0 detections"


def test_an_image_without_predictions_says_so(tmp_path, saved_figures):
    from keras_tl.tasks.detection_reports import plot_detections

    titles = plot_detections(
        [np.zeros((32, 32, 3)), np.zeros((32, 32, 3))],
        [[], [{"class_name": "car", "score": 0.12, "box": [1, 1, 9, 9]}]],
        str(tmp_path / "none.png"), names=["a.png", "b.png"])
    assert titles == ["a.png: 0 detections", "b.png: 0 detections"]
    first, second = _image_axes(saved_figures[str(tmp_path / "none.png")])
    assert "no predictions" in _texts(first)
    assert "no prediction scored 0.30 or more\n(best: 0.12)" in _texts(second)


def test_the_confusion_matrix_states_its_item_count_and_accuracy(tmp_path, saved_figures):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    scores = np.eye(2, dtype="float32")[[0, 1, 1, 1]]  # predicts 0, 1, 1, 1
    dataset = tf.data.Dataset.from_tensor_slices((scores, [0, 0, 1, 1])).batch(2)
    reports.plot_confusion_matrix(model, dataset, ["cat", "dog"], str(tmp_path / "cm.png"))
    ax, = saved_figures[str(tmp_path / "cm.png")].axes
    assert ax.get_title() == "Validation confusion matrix\n4 items, accuracy 75.0% (3 right)"


def test_a_class_name_the_default_font_lacks_is_drawn_from_a_font_that_has_it(tmp_path,
                                                                              saved_figures):
    # DejaVu Sans has no circled letters; matplotlib's STIX fonts do
    from keras_tl.tasks.detection_reports import plot_detections

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither keras_tl's warning nor matplotlib's
        plot_detections([np.zeros((32, 32, 3))],
                        [[{"class_name": "Ⓐ", "score": 0.9, "box": [1, 1, 9, 9]}]],
                        str(tmp_path / "circled.png"))
    ax, = _image_axes(saved_figures[str(tmp_path / "circled.png")])
    label, = [t for t in ax.texts if t.get_text() == "Ⓐ 0.90"]
    assert len(label.get_fontfamily()) == 2 and label.get_fontfamily()[0] == "DejaVu Sans"


def test_characters_no_font_has_are_named_in_one_warning(tmp_path):
    # Egyptian hieroglyphs: in no font here (nor matplotlib's own)
    names = ["\U00013000", "\U00013001"]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
    dataset = tf.data.Dataset.from_tensor_slices((np.eye(2, dtype="float32"), [0, 1])).batch(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reports.plot_confusion_matrix(model, dataset, names, str(tmp_path / "cm.png"))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # not one matplotlib "Glyph ... missing" per glyph
    assert "\U00013000\U00013001" in messages[0] and "fonts-noto-cjk" in messages[0]


def test_a_one_epoch_cosine_stage_logs_the_rate_its_last_step_used(tmp_path, capsys):
    x, y, names = colour_arrays()
    result = keras_tl.finetune(
        (x, y), tiny_backbone(), class_names=names, batch_size=8, verbose=2, patience=0,
        stages=[keras_tl.Stage("tune", unfreeze="all", epochs=1, learning_rate=1e-3,
                               schedule="cosine")],
        output_dir=str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "learning_rate:" in out and "learning_rate: 0.0000e+00" not in out
    # the cosine's value at its last step (of n) is 1e-3 * (1 + cos(pi (n - 1) / n)) / 2
    steps = -(-int(result.info["num_train"]) // 8)
    expected = 1e-3 * (1 + np.cos(np.pi * (steps - 1) / steps)) / 2
    np.testing.assert_allclose(result.histories["tune"]["learning_rate"], [expected],
                               rtol=1e-5)
