"""Learning-rate finder (Smith 2015; fastai's `lr_find`).

Trains on successive batches while the learning rate grows exponentially
from `start_lr` to `end_lr`, records the loss smoothed by a debiased
exponential moving average (beta 0.98), and stops once it exceeds 4x the
best smoothed loss. The suggestion is fastai's "valley": the middle of the
longest run of falling losses, a rate where the loss still falls fast but
far from where it diverges. `steep` (steepest descent) and `minimum / 10`
are given too. The model's weights are restored afterwards.
"""

import dataclasses
import json
import math
import os
from typing import List

import numpy as np


@dataclasses.dataclass
class LRFinderResult:
    """A learning-rate sweep and its suggestions.

    Attributes:
        learning_rates: the rate of every step.
        losses: the smoothed (debiased EMA) loss of every step.
        suggestion: fastai's "valley" rate, what `learning_rate="auto"` uses.
        steep: the rate where the smoothed loss falls fastest.
        minimum: the rate of the lowest smoothed loss, divided by 10.

    Example:
    >>> result = suggest(list(np.geomspace(1e-5, 1, 50)), list(np.linspace(2, 1, 50)))
    >>> round(result.suggestion, 6) > 0
    True
    """

    learning_rates: List[float]
    losses: List[float]
    suggestion: float
    steep: float
    minimum: float

    def to_json(self):
        """JSON-ready dict of the sweep.

        Example:
        >>> sorted(suggest([1e-3, 1e-2, 1e-1], [1.0, 0.5, 0.9]).to_json())
        ['learning_rates', 'losses', 'minimum', 'steep', 'suggestion']
        """
        return dataclasses.asdict(self)

    def plot(self, path):
        """Writes a PNG of loss against learning rate (log scale) with the
        suggestion marked; returns `path`.

        Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "lr_find.png")
        >>> _ = suggest(list(np.geomspace(1e-5, 1, 50)), list(np.linspace(2, 1, 50))).plot(path)
        >>> os.path.getsize(path) > 0
        True
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.learning_rates, self.losses, label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        at = int(np.argmin(np.abs(np.log(self.learning_rates) - math.log(self.suggestion))))
        ax.plot([self.suggestion], [self.losses[at]], "o", color="red",
                label=f"suggestion {self.suggestion:.2g} (valley)")
        ax.axvline(self.steep, color="gray", linestyle=":", label=f"steep {self.steep:.2g}")
        ax.axvline(self.minimum, color="gray", linestyle="--", label=f"minimum/10 {self.minimum:.2g}")
        ax.legend()
        ax.set_title("Learning-rate finder")
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def save(self, folder, name="lr_find"):
        """Writes `<name>.png` and `<name>.json` into `folder`.

        Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> suggest(list(np.geomspace(1e-5, 1, 50)), list(np.linspace(2, 1, 50))).save(folder)
        >>> sorted(os.listdir(folder))
        ['lr_find.json', 'lr_find.png']
        """
        os.makedirs(folder, exist_ok=True)
        self.plot(os.path.join(folder, f"{name}.png"))
        with open(os.path.join(folder, f"{name}.json"), "w") as f:
            json.dump(self.to_json(), f, indent=2)


def valley(losses):
    """Index of fastai's "valley": on the longest decreasing subsequence of
    `losses`, the point half-way through its middle third.

    Example:
    >>> valley([9, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 5])
    4
    """
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max(max_start + int(sections) + int(sections / 2), 0)


def suggest(learning_rates, losses, skip_start=None, skip_end=5):
    """The suggestions for a recorded sweep, computed like fastai on the
    curve without its first tenth and last `skip_end` steps.

    Example:
    >>> rates = list(np.geomspace(1e-6, 1, 61))
    >>> losses = [2.0] * 20 + list(np.linspace(2.0, 0.5, 30)) + list(np.linspace(0.5, 4, 11))
    >>> result = suggest(rates, losses)
    >>> 1e-5 < result.suggestion < result.minimum * 10 < 1
    True
    """
    rates = np.asarray(learning_rates, dtype="float64")
    values = np.asarray(losses, dtype="float64")
    skip_start = len(rates) // 10 if skip_start is None else skip_start
    if len(rates) - skip_start - skip_end >= 3:
        rates, values = rates[skip_start:len(rates) - skip_end], values[skip_start:len(values) - skip_end]
    if len(rates) < 2:
        raise ValueError("The learning-rate sweep recorded fewer than 2 steps.")
    slopes = np.diff(values) / np.diff(np.log(rates))
    return LRFinderResult(
        learning_rates=[float(r) for r in learning_rates],
        losses=[float(v) for v in losses],
        suggestion=float(rates[valley(list(values))]),
        steep=float(rates[int(np.argmin(slopes))]),
        minimum=float(rates[int(np.argmin(values))] / 10),
    )


def lr_sweep(model, dataset, loss, make_optimizer, start_lr=1e-7, end_lr=10.0,
             num_steps=100, beta=0.98, stop_factor=4.0, class_weight=None):
    """Sweeps the learning rate over `num_steps` training batches of
    `dataset` (cycled), on `model` compiled with `loss` and
    `make_optimizer(learning_rate)`; restores the weights; returns an
    `LRFinderResult`.

    Example:
    >>> import keras, tensorflow as tf
    >>> keras.utils.set_random_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    >>> before = model.get_weights()[0].copy()
    >>> result = lr_sweep(model, data, "sparse_categorical_crossentropy", keras.optimizers.Adam)
    >>> 1e-4 < result.suggestion < 1, bool(np.array_equal(model.get_weights()[0], before))
    (True, True)
    """
    saved = model.get_weights()
    model.compile(optimizer=make_optimizer(start_lr), loss=loss)
    ratio = (end_lr / start_lr) ** (1 / max(num_steps - 1, 1))
    rates, smoothed = [], []
    average, best = 0.0, math.inf
    try:
        for step, (inputs, targets) in zip(range(num_steps), _cycle(dataset)):
            rate = start_lr * ratio ** step
            model.optimizer.learning_rate = rate
            logs = model.train_on_batch(inputs, targets, class_weight=class_weight,
                                        return_dict=True)
            average = beta * average + (1 - beta) * float(logs["loss"])
            debiased = average / (1 - beta ** (step + 1))
            if not math.isfinite(debiased):
                break
            rates.append(rate)
            smoothed.append(debiased)
            best = min(best, debiased)
            if debiased > stop_factor * best:
                break
    finally:
        model.set_weights(saved)
    return suggest(rates, smoothed)


def _cycle(dataset):
    from keras_tl.training.cache import backend_batches

    while True:
        empty = True
        for batch in backend_batches(dataset):
            empty = False
            yield batch
        if empty:
            return


def find_learning_rate(data, backbone=None, *, task=None, stage=None, output_dir=None,
                       weights="default", batch_size=32, validation_split=0.2,
                       class_names=None, dropout=None, seed=0, start_lr=1e-7, end_lr=10.0,
                       num_steps=100, optimizer="adam", weight_decay=None,
                       label_smoothing=0.0, cache_features="auto", verbose=True,
                       **task_options):
    """Runs the learning-rate finder for one stage (default: the task's
    first, the head) of a `keras_tl.finetune` job on `data`: the same data
    preparation, model and optimizer, on cached backbone features when the
    stage allows it. Writes `lr_find.png` (loss against learning rate, the
    suggestion marked) and `lr_find.json` into `output_dir` when given,
    prints "suggested learning rate: X" and returns an `LRFinderResult`.

    Example:
    >>> import keras, numpy as np
    >>> pixels = np.random.default_rng(0).integers(0, 255, (24, 16, 16, 3))
    >>> images = keras.Input((16, 16, 3))
    >>> x = keras.layers.Rescaling(1 / 255)(images)  # its preprocessing: pixels to [0, 1]
    >>> for block, filters in ((1, 4), (2, 8)):  # two blocks of convolution and BatchNorm
    ...     x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
    ...     x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
    >>> backbone = keras.Model(images, x, name="backbone")
    >>> result = find_learning_rate((pixels, [0, 1, 2] * 8), backbone, num_steps=30, verbose=False)
    >>> result.suggestion > 0
    True
    """
    import keras

    from keras_tl.tasks import find_task
    from keras_tl.training import cache
    from keras_tl.training.optimizers import build_optimizer, rate_multipliers

    keras.utils.set_random_seed(seed)
    task = find_task(data, backbone, task)
    options = task.check_options(task_options)
    prepared = task.prepare(data, backbone, weights=weights, class_names=class_names,
                            batch_size=batch_size, validation_split=validation_split,
                            validation_data=None, test_data=None, seed=seed,
                            dropout=dropout, **options)
    from keras_tl.training.loop import resolve_unfreeze

    stage = resolve_unfreeze(prepared.model, stage or task.default_stages()[0])
    prepared.apply_stage(prepared.model, stage)
    model, train = prepared.model, prepared.train
    split = None
    if cache_features and not stage.lora_rank and not task.train_is_random(options):
        split = task.split_head(model)
    if split is not None and (cache_features is True or cache.cache_fits_in_memory(
            split[0], prepared.info.get("num_train", 0))):
        train, _, _ = cache.cached_datasets(split[0], prepared.train, None, batch_size, seed)
        model = split[1]
    multipliers = rate_multipliers(prepared.model, stage.layer_decay, stage.lr_multipliers) \
        if (stage.layer_decay or stage.lr_multipliers) else None
    result = lr_sweep(
        model, train, task.training_compile_options(label_smoothing)["loss"],
        lambda rate: build_optimizer(optimizer, rate, weight_decay, multipliers),
        start_lr=start_lr, end_lr=end_lr, num_steps=num_steps)
    if output_dir:
        result.save(output_dir)
    if verbose:
        print(f"suggested learning rate: {result.suggestion:.3g}")
    return result
