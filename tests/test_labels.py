"""check_labels: how labels of every kind become class indices and names."""

import numpy as np
import pytest

from keras_tl.data.splits import check_labels
from keras_tl.errors import DataError


def test_strings_are_sorted_and_indexed():
    labels, names = check_labels(["dog", "cat", "dog"])
    assert names == ["cat", "dog"] and labels.tolist() == [1, 0, 1]
    assert labels.dtype == np.int32


def test_numeric_strings_are_ordered_numerically():
    labels, names = check_labels(["10", "2", "1", "2"])
    assert names == ["1", "2", "10"]
    assert labels.tolist() == [2, 1, 0, 1]
    _, names = check_labels(["-1", "1", "0.5"])
    assert names == ["-1", "0.5", "1"]


def test_one_and_one_point_zero_are_one_class():
    labels, names = check_labels(["1", "1.0", "2", " 2 "])
    assert names == ["1", "2"] and labels.tolist() == [0, 0, 1, 1]
    # "1" and 1 mixed, as from a CSV or an object column
    labels, names = check_labels(np.array(["1", 1, 2.0, "2"], dtype=object))
    assert names == ["1", "2"] and labels.tolist() == [0, 0, 1, 1]
    labels, names = check_labels([1, "1.0", "cat"])
    assert names == ["1", "cat"] and labels.tolist() == [0, 0, 1]


def test_numbers_come_before_strings():
    _, names = check_labels(["b", "10", "a", "9"])
    assert names == ["9", "10", "a", "b"]


def test_integers_and_whole_floats_are_class_indices():
    labels, names = check_labels([2, 0, 2])
    assert names == ["0", "1", "2"] and labels.tolist() == [2, 0, 2]
    labels, names = check_labels(np.array([1.0, 0.0, 1.0]))
    assert names == ["0", "1"] and labels.tolist() == [1, 0, 1]
    labels, _ = check_labels(np.array([1, 0.0, 1], dtype=object))
    assert labels.tolist() == [1, 0, 1]


def test_fractional_float_labels_are_refused():
    with pytest.raises(DataError, match=r"whole numbers.*1\.5"):
        check_labels(np.array([0.0, 1.5, 1.0]))


@pytest.mark.parametrize("labels", [
    [0.0, np.nan, 1.0],
    np.array(["a", None, "b"], dtype=object),
    np.array(["a", np.nan, "b"], dtype=object),
    ["a", "", "b"],
    ["a", "  ", "b"],
    ["a", np.nan, "b"],  # a list: NaN must not become the string "nan"
    np.array(["a", np.nan, "b"]),  # already "nan", as numpy makes it
])
def test_missing_labels_are_refused(labels):
    with pytest.raises(DataError, match=r"1 of 3 labels are missing.*label 1\b"):
        check_labels(labels)


def test_class_names_match_labels_as_numbers():
    labels, names = check_labels(["2.0", "10"], class_names=["2", "10", "11"], min_classes=1)
    assert names == ["2", "10", "11"] and labels.tolist() == [0, 1]
    with pytest.raises(DataError, match=r"\['3'\] are not in class_names"):
        check_labels(["2", "3"], class_names=["2", "10"])


def test_class_names_must_be_distinct():
    from keras_tl.errors import ConfigError

    with pytest.raises(ConfigError, match="twice"):
        check_labels(["1", "2"], class_names=["1", "1.0", "2"])


def test_integer_labels_beyond_class_names_or_negative():
    with pytest.raises(DataError, match="needs 3 class names"):
        check_labels([0, 2], class_names=["a", "b"])
    with pytest.raises(DataError, match=">= 0"):
        check_labels([0, -1])


def test_one_hot_and_single_class():
    labels, names = check_labels(np.eye(3)[[2, 0, 1]])
    assert labels.tolist() == [2, 0, 1] and names == ["0", "1", "2"]
    with pytest.raises(DataError, match="at least two classes"):
        check_labels(["a", "a"])
    assert check_labels(["a", "a"], min_classes=1)[1] == ["a"]
