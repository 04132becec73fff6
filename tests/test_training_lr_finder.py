"""The learning-rate finder: the sweep, its suggestions, the plot, the CLI,
and `learning_rate="auto"` stages."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import cli
from keras_tl.training.lr_finder import lr_sweep, suggest, valley
from tests.helpers import colour_arrays, tiny_backbone


def _linear_problem(random_labels=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    if random_labels:  # nothing to learn: large rates only make the model overconfident
        y = rng.integers(0, 2, len(y)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def _linear_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))


@pytest.mark.core
def test_sweep_is_exponential_smoothed_stops_at_4x_and_restores_weights():
    model = _linear_model()
    before = [w.copy() for w in model.get_weights()]
    result = lr_sweep(model, _linear_problem(random_labels=True),
                      "sparse_categorical_crossentropy", keras.optimizers.Adam,
                      start_lr=1e-5, end_lr=1e3, num_steps=120)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    rates = np.asarray(result.learning_rates)
    ratios = rates[1:] / rates[:-1]
    np.testing.assert_allclose(ratios, (1e3 / 1e-5) ** (1 / 119), rtol=1e-9)
    assert rates[0] == pytest.approx(1e-5)
    assert len(rates) < 120, "diverged before the end: stopped at 4x the best loss"
    losses = result.losses
    assert losses[-1] > 4 * min(losses) or not math.isfinite(losses[-1])
    assert result.minimum == pytest.approx(rates[int(np.argmin(losses[len(losses) // 10:
                                                                    len(losses) - 5]))
                                                 + len(losses) // 10] / 10)


@pytest.mark.core
def test_the_suggestion_of_a_learnable_problem_is_a_usable_rate():
    result = lr_sweep(_linear_model(), _linear_problem(), "sparse_categorical_crossentropy",
                      keras.optimizers.Adam, start_lr=1e-6, end_lr=10, num_steps=100)
    assert 1e-4 < result.suggestion < 1, result.suggestion


@pytest.mark.core
def test_the_first_loss_is_debiased_not_shrunk_by_the_moving_average():
    model = _linear_model()
    data = _linear_problem()
    x, y = next(iter(data))
    first = float(keras.losses.SparseCategoricalCrossentropy()(y, model(x)))
    result = lr_sweep(model, data, "sparse_categorical_crossentropy",
                      keras.optimizers.Adam, start_lr=1e-7, end_lr=1e-6, num_steps=3)
    assert result.losses[0] == pytest.approx(first, rel=1e-4)  # not 0.02 * first


@pytest.mark.core
def test_valley_and_steep_on_a_known_curve():
    rates = list(np.geomspace(1e-6, 10, 71))
    # flat, then falling (steepest around 1e-3), then diverging
    losses = [2.0 - 1.5 / (1 + math.exp(-3 * (math.log10(r) + 3))) for r in rates[:60]]
    losses += list(np.linspace(losses[-1], 10, 11))
    result = suggest(rates, losses)
    assert 1e-4 < result.steep < 1e-2
    assert 1e-5 < result.suggestion < result.minimum * 10 < 1
    assert valley(losses) > 0


@pytest.mark.core
def test_find_learning_rate_writes_the_plot_and_prints_the_suggestion(tmp_path, capsys):
    x, y, names = colour_arrays()
    result = keras_tl.find_learning_rate((x, y), tiny_backbone(), class_names=names,
                                         batch_size=8, num_steps=40, output_dir=str(tmp_path))
    out = capsys.readouterr().out
    assert f"suggested learning rate: {result.suggestion:.3g}" in out
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
    saved = json.load(open(tmp_path / "lr_find.json"))
    assert saved["suggestion"] == result.suggestion and len(saved["losses"]) > 10


def test_cli_lr_find(tmp_path, image_folder, capsys):
    code = cli.main(["lr-find", image_folder, "--backbone", "mobilenet_v2", "--weights", "none",
                     "--image-size", "32", "--batch-size", "8", "--num-steps", "20",
                     "--output", str(tmp_path / "lr")])
    assert code == 0
    out = capsys.readouterr().out
    assert "suggested learning rate: " in out
    assert (tmp_path / "lr" / "lr_find.png").exists()


def test_auto_learning_rate_is_found_once_and_kept_on_resume(tmp_path, monkeypatch):
    from keras_tl.training import lr_finder

    x, y, names = colour_arrays()
    sweeps = []
    original = lr_finder.lr_sweep

    def counting(*args, **kwargs):
        sweeps.append(1)
        return original(*args, **dict(kwargs, num_steps=30))

    monkeypatch.setattr(lr_finder, "lr_sweep", counting)
    stages = [keras_tl.Stage("head", epochs=2, learning_rate="auto")]
    options = dict(class_names=names, batch_size=8, verbose=0, patience=0, stages=stages,
                   output_dir=str(tmp_path / "run"))
    result = keras_tl.finetune((x, y), tiny_backbone(), **options)
    state = json.load(open(tmp_path / "run" / "checkpoint" / "state.json"))
    rate = state["learning_rates"]["head"]
    assert result.histories["head"]["learning_rate"] == pytest.approx([rate, rate])
    assert (tmp_path / "run" / "lr_find_head.png").exists()
    keras_tl.finetune((x, y), tiny_backbone(), **options)  # finished: reloaded, no new sweep
    assert sweeps == [1]


@pytest.mark.core
def test_cli_learning_rate_auto_reaches_the_stage():
    args = cli.build_parser().parse_args(["finetune", "data/", "--learning-rate", "auto",
                                          "--layer-decay", "0.8"])
    head, finetune = cli._stages(args, keras_tl.tasks.get_task("image_classification"))
    assert head.learning_rate == "auto"
    assert (head.layer_decay, finetune.layer_decay) == (None, 0.8)
