"""Multi-label labels (`keras_tl.data.multi_label`), thresholds and metrics
(`keras_tl.evaluation.multi_label`)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from keras_tl.errors import DataError
from keras_tl.data import multi_label as label_data
from keras_tl.evaluation import multi_label


def _example(seed=0, n=60, classes=4):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, classes)) < 0.4).astype("uint8")
    # informative but noisy scores, with ties (rounded) as real models give
    scores = np.round(np.clip(0.25 * targets + 0.6 * rng.random((n, classes)), 0, 1), 2)
    return targets, scores


def test_average_precision_matches_sklearn_with_ties():
    targets, scores = _example()
    ours = multi_label.average_precision(targets, scores)
    expected = [average_precision_score(targets[:, k], scores[:, k]) for k in range(4)]
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    metrics = multi_label.multi_label_metrics(targets, scores, [0.5] * 4)
    assert metrics["mAP"] == pytest.approx(average_precision_score(targets, scores, average="macro"))
    predicted = scores >= 0.5
    assert metrics["micro_f1"] == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro"))


def test_thresholds_are_chosen_per_class_not_fixed_at_one_half():
    targets, scores = _example(seed=1, n=200)
    scores[:, 0] *= 0.5  # class 0's scores all sit below 0.5: a fixed 0.5 predicts none
    thresholds = multi_label.choose_thresholds(targets, scores)
    assert thresholds[0] < 0.5
    for k in range(4):
        chosen = f1_score(targets[:, k], scores[:, k] >= thresholds[k])
        best = max(f1_score(targets[:, k], scores[:, k] >= t) for t in np.unique(scores[:, k]))
        assert chosen == pytest.approx(best)
    fixed = multi_label.multi_label_metrics(targets, scores, [0.5] * 4)["macro_f1"]
    tuned = multi_label.multi_label_metrics(targets, scores, thresholds)["macro_f1"]
    assert tuned > fixed


def test_a_class_with_few_positives_keeps_the_default_threshold():
    targets = np.array([[1, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 0]])
    scores = np.array([[0.1, 0.9], [0.05, 0.8], [0.0, 0.7], [0.0, 0.6], [0.0, 0.55], [0.0, 0.1]])
    thresholds = multi_label.choose_thresholds(targets, scores)
    assert thresholds[0] == 0.5
    assert thresholds[1] == pytest.approx(0.325)


@pytest.mark.parametrize("cell", ["cat,dog", "cat|dog", '["cat", "dog"]'])
def test_another_separator_is_a_one_line_error(cell):
    with pytest.raises(DataError, match="separate the labels of one example with ';'") as error:
        label_data.parse_label_lists(["cat", cell])
    assert "row 2" in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_label_in_validation_data_is_named():
    with pytest.raises(DataError, match="'fish' .* training classes: cat, dog"):
        label_data.label_matrix([["cat"], ["fish"]], class_names=["cat", "dog"])


def test_labels_above_their_thresholds():
    found = multi_label.labels_above(np.array([[0.3, 0.2], [0.1, 0.9]]), [0.25, 0.95], ["a", "b"])
    assert found == [[("a", 0.3)], []]


def _images(folder, names):
    for name in names:
        (folder / name).write_bytes(b"")


def test_csv_with_a_list_column_and_one_with_indicator_columns(tmp_path):
    from keras_tl.data.multi_label import read_multi_label_csv

    _images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "lists.csv").write_text("file,labels\na.png,cat;dog\nb.png,dog\nc.png,\n")
    (tmp_path / "columns.csv").write_text("file,cat,dog\na.png,1,1\nb.png,0,1\nc.png,0,0\n")
    files, lists, names = read_multi_label_csv(str(tmp_path / "lists.csv"))
    _, columns, column_names = read_multi_label_csv(str(tmp_path / "columns.csv"))
    assert names == column_names == ["cat", "dog"]
    assert lists.tolist() == columns.tolist() == [[1, 1], [0, 1], [0, 0]]
    assert files[0] == str(tmp_path / "a.png")


def test_csv_data_errors_name_the_row(tmp_path):
    from keras_tl.data.multi_label import read_multi_label_csv
    from keras_tl.errors import DataNotFoundError

    _images(tmp_path, ["a.png"])
    (tmp_path / "missing.csv").write_text("file,labels\na.png,cat\nnope.png,dog\n")
    with pytest.raises(DataNotFoundError, match="row 3: image file not found: .*nope.png"):
        read_multi_label_csv(str(tmp_path / "missing.csv"))
    (tmp_path / "commas.csv").write_text('file,labels\na.png,"cat,dog"\n')
    with pytest.raises(DataError, match="separate the labels of one example with ';'"):
        read_multi_label_csv(str(tmp_path / "commas.csv"))
    (tmp_path / "columns.csv").write_text("file,cat\na.png,yes\n")
    with pytest.raises(DataError, match="row 2, column 'cat': 'yes' is not 0 or 1"):
        read_multi_label_csv(str(tmp_path / "columns.csv"))


def test_fashion_tiles_are_deterministic_and_labelled_by_what_they_hold():
    from keras_tl.datasets.fashion_tiles import make_fashion_tiles

    images, targets, names = make_fashion_tiles(50, seed=3)
    again, same_targets, _ = make_fashion_tiles(50, seed=3)
    other, _, _ = make_fashion_tiles(50, seed=4)
    assert np.array_equal(images, again) and np.array_equal(targets, same_targets)
    assert not np.array_equal(images, other)
    cells = images.reshape(50, 2, 28, 2, 28).transpose(0, 1, 3, 2, 4).reshape(50, 4, -1)
    filled = (cells.max(axis=2) > 0).sum(axis=1)
    assert filled.tolist() == targets.sum(axis=1).tolist()  # one filled cell per label
    assert set(targets.sum(axis=1).tolist()) == {1, 2, 3} and len(names) == 10
