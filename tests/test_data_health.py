"""Data health (`keras-tl check`): near-duplicates, suspect labels, imbalance,
corrupt files."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_tl import cli
from keras_tl.evaluation import data_health


def _clusters(per_class=30, classes=3, dims=16, seed=0):
    """Well separated Gaussian clusters: features a linear head separates."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0, 1, (len(labels), dims)), labels


def test_a_planted_duplicate_is_found_with_its_split():
    features = np.random.default_rng(0).normal(size=(90, 16))  # no two alike
    labels = np.repeat([0, 1, 2], 30)
    paths = [f"{i}.png" for i in range(len(labels))]
    splits = ["train"] * 60 + ["test"] * 30
    features[75] = features[4] * 1.001 + 1e-3  # a re-encoded copy of a train file, in test
    report = data_health.data_health_report(features, labels, ["a", "b", "c"], paths, splits)
    assert report["duplicates"] == [[{"path": "4.png", "split": "train"},
                                     {"path": "75.png", "split": "test"}]]


def test_a_flipped_label_is_found_with_the_right_suggestion():
    features, labels = _clusters()
    labels[7] = 2  # truly class 0
    report = data_health.data_health_report(features, labels, ["a", "b", "c"],
                                            [f"{i}.png" for i in range(len(labels))],
                                            ["train"] * len(labels))
    assert [(issue["path"], issue["label"], issue["suggested_label"])
            for issue in report["label_issues"]] == [("7.png", "c", "a")]


def test_suspects_are_ranked_by_margin_and_need_another_confident_class():
    # thresholds (mean self-confidence): class 0 0.85, class 1 0.525, class 2 none labelled
    probabilities = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1],  # labelled 0
                              [0.1, 0.9, 0.0], [0.2, 0.7, 0.1],  # labelled 1
                              [0.5, 0.45, 0.05],  # labelled 1, below; class 0 is below 0.85 too
                              [0.95, 0.05, 0.0]])  # labelled 1, below; class 0 above 0.85
    issues = data_health.find_label_issues(probabilities, [0, 0, 1, 1, 1, 1])
    assert issues == [(5, 0, pytest.approx(0.9))]


def test_imbalance_and_counts_by_split():
    features, labels = _clusters(per_class=10)
    keep = np.r_[0:10, 10:15, 20:22]  # 10, 5 and 2 examples
    report = data_health.data_health_report(features[keep], labels[keep], ["a", "b", "c"],
                                            [f"{i}" for i in keep], ["train"] * 15 + ["test"] * 2,
                                            folds=2)
    assert report["class_counts"] == {"a": 10, "b": 5, "c": 2}
    assert report["imbalance_ratio"] == 5.0
    assert report["class_counts_by_split"]["test"] == {"a": 0, "b": 0, "c": 2}


def test_check_command_writes_the_report_and_the_grid(image_folder, tmp_path, capsys):
    test_folder = tmp_path / "test"
    for name in ("blue", "green", "red"):  # a test split of copies: leakage
        (test_folder / name).mkdir(parents=True)
        original = os.path.join(image_folder, name, sorted(os.listdir(os.path.join(image_folder, name)))[0])
        shutil.copy(original, test_folder / name / "copy.png")
    (tmp_path / "images" / "blue" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "health"
    code = cli.main(["check", image_folder, "--test-data", str(test_folder), "--output", str(out),
                     "--backbone", "mobilenet_v2", "--weights", "none", "--image-size", "32",
                     "--folds", "3"])
    assert code == 0
    report = json.loads((out / "data_health.json").read_text())
    assert (out / "label_issues.png").stat().st_size > 0
    groups = [{(entry["path"], entry["split"]) for entry in group} for group in report["duplicates"]]
    assert any({(original, "train"), (str(test_folder / "red" / "copy.png"), "test")} <= group
               for group in groups)
    assert report["corrupt_files"] == [str(tmp_path / "images" / "blue" / "broken.png")]
    assert report["class_counts"] == {"blue": 9, "green": 9, "red": 9}
    assert "near-duplicates" in capsys.readouterr().out


def test_check_arguments_are_checked_before_any_backbone_loads(image_folder, tmp_path, capsys):
    assert cli.main(["check", image_folder, "--output", str(tmp_path / "h"), "--folds", "1"]) == 2
    assert "--folds must be at least 2" in capsys.readouterr().err
    assert cli.main(["check", str(tmp_path / "missing"), "--output", str(tmp_path / "h")]) == 2
    assert "Data folder not found" in capsys.readouterr().err
