"""Text data: CSV, .txt folders and lists; splits; clear errors on bad input."""

import gzip
import os

import numpy as np
import pytest

from keras_tl.data.text import (
    is_text_data,
    load_texts,
    sample_texts,
    split_texts,
)
from tests.helpers import sentiment_texts, write_text_csv, write_text_folder


def test_is_text_data_recognises_each_form(tmp_path):
    texts, labels = sentiment_texts(3)
    assert is_text_data("reviews.csv") and is_text_data("reviews.tsv.gz")
    assert is_text_data(write_text_folder(tmp_path / "txt", per_class=2))
    assert is_text_data((texts, labels))
    assert is_text_data((np.asarray(texts), np.asarray(labels)))
    assert not is_text_data((np.zeros((4, 8, 8, 3)), [0, 1, 0, 1]))
    assert not is_text_data(str(tmp_path / "missing_folder"))
    os.makedirs(tmp_path / "images" / "cat")
    (tmp_path / "images" / "cat" / "1.png").write_bytes(b"")
    assert not is_text_data(str(tmp_path / "images"))


def test_csv_with_custom_columns_and_gzip(tmp_path):
    texts, labels = sentiment_texts(5)
    path = write_text_csv(tmp_path / "r.csv", texts, labels, "review", "score")
    data = load_texts(path, text_column="review", label_column="score")
    assert data.texts == texts
    assert data.class_names == ["negative", "positive"]
    assert data.labels.tolist() == [0] * 5 + [1] * 5
    with open(path, "rb") as f, gzip.open(str(tmp_path / "r.csv.gz"), "wb") as g:
        g.write(f.read())
    zipped = load_texts(str(tmp_path / "r.csv.gz"), text_column="review", label_column="score")
    assert zipped.texts == texts


def test_folder_of_txt_files(tmp_path):
    data = load_texts(write_text_folder(tmp_path / "txt", per_class=3))
    assert data.class_names == ["negative", "positive"]
    assert len(data) == 6 and data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_lists_with_integer_labels_and_class_names():
    texts, _ = sentiment_texts(4)
    data = load_texts((texts, [0] * 4 + [1] * 4), class_names=["neg", "pos"])
    assert data.class_names == ["neg", "pos"]


def test_split_is_stratified_and_seeded():
    data = load_texts(sentiment_texts(20))
    train, val = split_texts(data, 0.25, seed=3)
    assert len(train) == 30 and len(val) == 10
    assert np.bincount(val.labels).tolist() == [5, 5]
    again, _ = split_texts(data, 0.25, seed=3)
    assert again.texts == train.texts
    small = sample_texts(data, 10, seed=0)
    assert len(small) == 10 and np.bincount(small.labels).tolist() == [5, 5]


def test_missing_label_column_lists_the_columns(tmp_path):
    path = write_text_csv(tmp_path / "r.csv", *sentiment_texts(2), "review", "score")
    with pytest.raises(ValueError, match=r"no column 'label'.*\['id', 'review', 'score'\]"):
        load_texts(path, text_column="review")


def test_empty_texts_are_named(tmp_path):
    texts, labels = sentiment_texts(3)
    texts[2] = "   "
    path = write_text_csv(tmp_path / "r.csv", texts, labels)
    with pytest.raises(ValueError, match=r"1 of 6 texts are empty.*row 4"):
        load_texts(path)
    with pytest.raises(ValueError, match=r"empty.*text 2"):
        load_texts((texts, labels))
    with pytest.raises(ValueError, match="no examples"):
        load_texts(([], []))


def test_one_class_only_is_refused():
    texts, _ = sentiment_texts(3)
    with pytest.raises(ValueError, match="at least two classes"):
        load_texts((texts, ["pos"] * len(texts)))


def test_non_utf8_files_are_named(tmp_path):
    folder = write_text_folder(tmp_path / "txt", per_class=2)
    bad = os.path.join(folder, "positive", "latin1.txt")
    with open(bad, "wb") as f:
        f.write("Très bon café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8"):
        load_texts(folder)
    assert "Très bon café" in load_texts(folder, fallback_encoding="latin-1").texts
    csv_path = tmp_path / "latin1.csv"
    csv_path.write_bytes("text,label\nTrès bon,pos\nmauvais,neg\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.csv is not UTF-8"):
        load_texts(str(csv_path))


def test_empty_txt_file_and_missing_path(tmp_path):
    folder = write_text_folder(tmp_path / "txt", per_class=2)
    open(os.path.join(folder, "negative", "empty.txt"), "w").close()
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        load_texts(folder)
    with pytest.raises(FileNotFoundError):
        load_texts(str(tmp_path / "nope.csv"))


def test_shipped_text_datasets():
    from keras_tl.datasets.text_datasets import (
        load_amazon_fine_foods,
        load_bbc_news,
        majority_accuracy,
    )

    (x, y), (x_test, y_test), names = load_amazon_fine_foods()
    assert (len(x), len(x_test), names) == (4000, 1000, ["great", "other"])
    assert majority_accuracy(y, y_test) == pytest.approx(0.658)
    assert not any("<br />" in t for t in x[:200])
    (x, y), (x_test, y_test), names = load_amazon_fine_foods(max_train=100, max_test=50)
    assert (len(x), len(x_test)) == (100, 50)
    (x, y), (x_test, y_test), names = load_bbc_news(max_train=50)
    assert names == ["business", "entertainment", "politics", "sports", "tech"]
    assert len(x) == 50 and len(x_test) == 444 and set(y_test.tolist()) == set(range(5))


# --- never read wrongly in silence ------------------------------------------


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_row_with_an_unquoted_comma_is_refused(tmp_path):
    from keras_tl.errors import DataError

    path = _write(tmp_path / "r.csv", "text,label\ngreat coffee,pos\n\ngood, really good,pos\n")
    with pytest.raises(DataError, match=r"r\.csv row 4 has 3 fields but the header has 2"):
        load_texts(path)


def test_unterminated_quote_is_refused(tmp_path):
    from keras_tl.errors import DataError

    path = _write(tmp_path / "r.csv", 'text,label\n"good,pos\nbad,neg\nnice,pos\n')
    with pytest.raises(DataError, match=r"r\.csv.*line 4.*unexpected end of data"):
        load_texts(path)


def test_row_numbers_count_blank_lines_and_multiline_texts(tmp_path):
    path = _write(tmp_path / "r.csv", 'text,label\n"two\nlines",pos\n\nbad,neg\n   ,neg\n')
    with pytest.raises(ValueError, match=r"r\.csv row 5 \(line 6\)"):
        load_texts(path)


def test_csv_numeric_labels_ordered_numerically_and_merged(tmp_path):
    path = _write(tmp_path / "r.csv", "text,label\na,10\nb,2\nc,2.0\nd,1\n")
    data = load_texts(path)
    assert data.class_names == ["1", "2", "10"]
    assert data.labels.tolist() == [2, 1, 1, 0]


def test_duplicate_column_is_refused(tmp_path):
    from keras_tl.errors import DataError

    path = _write(tmp_path / "r.csv", "text,label,label\na,pos,neg\nb,neg,pos\n")
    with pytest.raises(DataError, match=r"column 'label' 2 times"):
        load_texts(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_bom_are_decoded(tmp_path, encoding):
    texts, labels = sentiment_texts(2)
    rows = "".join(f"{t}\t{label}\n" for t, label in zip(texts, labels))
    data = load_texts(_write(tmp_path / "r.tsv", "text\tlabel\n" + rows + "Très bon café\tpositive\n",
                             encoding))
    assert data.texts == texts + ["Très bon café"]
    folder = write_text_folder(tmp_path / "txt", per_class=2)
    _write(tmp_path / "txt" / "positive" / "wide.txt", "Très bon café", encoding)
    # the BOM names the encoding, so no fallback guesses it wrongly
    assert "Très bon café" in load_texts(folder, fallback_encoding="latin-1").texts


def test_nul_characters_are_refused(tmp_path):
    from keras_tl.errors import DataError

    path = _write(tmp_path / "r.csv", "text,label\ngood,pos\nb\x00a\x00d\x00,neg\n")
    with pytest.raises(DataError, match=r"r\.csv row 3.*NUL"):
        load_texts(path)
    folder = write_text_folder(tmp_path / "txt", per_class=2)
    # UTF-16 without a BOM is valid UTF-8 when it is ASCII
    _write(tmp_path / "txt" / "negative" / "wide.txt", "bad", "utf-16-le")
    with pytest.raises(DataError, match=r"wide\.txt.*NUL"):
        load_texts(folder)


def test_hidden_files_in_class_folders_are_skipped(tmp_path):
    folder = write_text_folder(tmp_path / "txt", per_class=2)
    (tmp_path / "txt" / "positive" / "._000.txt").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    assert len(load_texts(folder)) == 4


def test_text_folders_ordered_like_labels(tmp_path):
    for name in ("10", "2", "1"):
        (tmp_path / name).mkdir()
        _write(tmp_path / name / "a.txt", f"text of class {name}")
    data = load_texts(str(tmp_path))
    assert data.class_names == ["1", "2", "10"]
    assert data.texts[data.labels.tolist().index(2)] == "text of class 10"


def test_missing_labels_from_lists_and_dataframes_are_refused():
    pd = pytest.importorskip("pandas")
    from keras_tl.errors import DataError

    texts, labels = sentiment_texts(2)
    labels[1] = None
    with pytest.raises(DataError, match="missing"):
        load_texts((texts, labels))
    frame = pd.DataFrame({"text": texts, "label": [0.0, np.nan, 1.0, 1.0]})
    with pytest.raises(DataError, match="missing"):
        load_texts(frame)
    frame = pd.DataFrame({"text": texts, "label": ["neg", np.nan, "pos", "pos"]})
    with pytest.raises(DataError, match="missing"):
        load_texts(frame)


def test_not_gzip_is_named(tmp_path):
    from keras_tl.errors import DataError

    path = _write(tmp_path / "r.csv.gz", "text,label\na,pos\n")
    with pytest.raises(DataError, match=r"r\.csv\.gz is not a gzip file"):
        load_texts(path)
