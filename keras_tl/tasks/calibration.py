"""Temperature scaling of a trained classifier, fitted on its validation data.

After the last stage, `calibrate` fits one temperature `T` on the validation
split's probabilities (`keras_tl.layers.temperature.fit_temperature`) and
composes it into the classifier's output: the softmax `Dense` is renamed
`"probabilities_uncalibrated"` and a `TemperatureScaling` layer named
`"probabilities"` follows it, so `predict`, the saved `model.keras` and every
export (which converts or traces that model) give `softmax(logits / T)`.
Argmax, hence accuracy, is unchanged. The run records the temperature and
the expected calibration error before and after in `metrics.json`.
"""

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from keras_tl.tasks.classification import OUTPUT_NAME

UNCALIBRATED_NAME = "probabilities_uncalibrated"
# fewer validation examples than this fit no temperature (the run records why)
MIN_EXAMPLES = 20


@dataclasses.dataclass
class Calibration:
    """What `calibrate` did: `record` goes into `metrics.json` as
    `metrics["calibration"]`; `errors` are `{part: {"ece", "ece_uncalibrated"}}`
    for the validation and test parts (empty when nothing was fitted).

    Example:
    >>> Calibration({"temperature": None, "skipped": "no validation data"}).temperature is None
    True
    """

    record: Dict[str, Any]
    errors: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def temperature(self):
        """The fitted temperature, or `None` when none was fitted."""
        return self.record.get("temperature")

    def add_to(self, metrics):
        """`metrics` (`{"validation": ..., "test": ...}`) with `ece` and
        `ece_uncalibrated` in each measured part and the record under
        `"calibration"`.

        Example:
        >>> Calibration({"temperature": 2.0}, {"validation": {"ece": 0.02}}).add_to(
        ...     {"validation": {"accuracy": 0.9}, "test": None})
        {'validation': {'accuracy': 0.9, 'ece': 0.02}, 'test': None, 'calibration': {'temperature': 2.0}}
        """
        metrics = dict(metrics)
        for part, errors in self.errors.items():
            if metrics.get(part) is not None:
                metrics[part] = {**metrics[part], **errors}
        metrics["calibration"] = dict(self.record)
        return metrics


def probabilities_and_labels(model, dataset):
    """`(probabilities, labels)` of `model` over a batched dataset of
    `(inputs, labels)`, batch by batch (so they stay aligned).

    Example:
    >>> import keras, tensorflow as tf
    >>> x = keras.Input((2,))
    >>> model = keras.Model(x, keras.layers.Dense(3, activation="softmax")(x))
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((5, 2)), [0, 1, 2, 0, 1])).batch(2)
    >>> probabilities, labels = probabilities_and_labels(model, data)
    >>> probabilities.shape, labels.tolist()
    ((5, 3), [0, 1, 2, 0, 1])
    """
    probabilities, labels = [], []
    for batch in dataset.as_numpy_iterator():
        inputs, targets = batch[0], batch[1]
        probabilities.append(np.asarray(model.predict_on_batch(inputs), dtype="float64"))
        labels.append(np.asarray(targets).reshape(-1).astype(int))
    return np.concatenate(probabilities), np.concatenate(labels)


def with_temperature(model, temperature):
    """`model` (a keras_tl classifier: softmax `Dense` named `"probabilities"`)
    with `TemperatureScaling(temperature)` after its softmax, the output
    still named `"probabilities"`; a model that has one gets its temperature
    set instead. The layers are shared with `model` (its softmax is renamed
    `"probabilities_uncalibrated"`).

    Example:
    >>> import keras
    >>> x = keras.Input((4,))
    >>> model = keras.Model(x, keras.layers.Dense(3, activation="softmax", name="probabilities")(x))
    >>> calibrated = with_temperature(model, 2.0)
    >>> calibrated.output_names, [layer.name for layer in calibrated.layers][1:]
    (['probabilities'], ['probabilities_uncalibrated', 'probabilities'])
    >>> temperature_of(calibrated)
    2.0
    """
    import keras

    from keras_tl.layers.temperature import TemperatureScaling

    output = model.get_layer(OUTPUT_NAME)
    if isinstance(output, TemperatureScaling):
        output.temperature.assign(float(temperature))
        return model
    output.name = UNCALIBRATED_NAME
    scaled = TemperatureScaling(temperature, name=OUTPUT_NAME, dtype="float32")(model.output)
    return keras.Model(model.input, scaled, name=model.name)


def temperature_of(model):
    """The temperature in a classifier's output (or in a text pipeline's
    classifier), or `None` when it has none.

    Example:
    >>> import keras
    >>> x = keras.Input((4,))
    >>> temperature_of(keras.Model(x, keras.layers.Dense(3, name="probabilities")(x))) is None
    True
    """
    from keras_tl.layers.temperature import TemperatureScaling

    model = getattr(model, "classifier", model)
    try:
        output = model.get_layer(OUTPUT_NAME)
    except (ValueError, AttributeError):
        return None
    if not isinstance(output, TemperatureScaling):
        return None
    import keras

    return float(keras.ops.convert_to_numpy(output.temperature))


def calibrate(prepared, temperature=None, min_examples=MIN_EXAMPLES):
    """Fits a temperature on `prepared.validation` (or uses `temperature`,
    e.g. the one a finished run recorded), composes it into `prepared.model`
    (and its `inference_model`, when that wraps the model, e.g. a text
    pipeline), compiled as the run leaves a model; returns a `Calibration`
    with the expected calibration error of the validation and test parts
    before and after. With no validation data, or fewer than `min_examples`
    examples, the model is left as it is and the record says why.

    Example:
    >>> calibrate(prepared).record  # doctest: +SKIP
    {'method': 'temperature_scaling', 'temperature': 1.84, 'fitted_on': 'validation', 'examples': 40}
    """
    import keras

    from keras_tl.layers.temperature import (apply_temperature, expected_calibration_error,
                                             fit_temperature)

    if prepared.validation is None:
        return Calibration({"temperature": None,
                            "skipped": "no validation data to fit a temperature on"})
    model = prepared.model
    probabilities, labels = probabilities_and_labels(model, prepared.validation)
    if len(labels) < min_examples:
        return Calibration({"temperature": None,
                            "skipped": f"{len(labels)} validation examples; a temperature is "
                                       f"fitted on {min_examples} or more"})
    if temperature is None:
        temperature = round(fit_temperature(probabilities, labels), 6)
    parts = {"validation": (probabilities, labels)}
    if prepared.test is not None:
        parts["test"] = probabilities_and_labels(model, prepared.test)
    errors = {part: {"ece": expected_calibration_error(
                         apply_temperature(p, temperature), y),
                     "ece_uncalibrated": expected_calibration_error(p, y)}
              for part, (p, y) in parts.items()}
    calibrated = with_temperature(model, temperature)
    calibrated.compile(optimizer=keras.optimizers.Adam(), **prepared.task.compile_options())
    prepared.model = calibrated
    inference = prepared.inference_model
    if inference is not None and getattr(inference, "classifier", None) is model:
        prepared.inference_model = inference.with_classifier(calibrated)
    record = {"method": "temperature_scaling", "temperature": float(temperature),
              "fitted_on": "validation", "examples": int(len(labels))}
    return Calibration(record, errors)


def recorded_temperature(metrics):
    """The temperature a run's `metrics.json` content records, or `None`.

    Example:
    >>> recorded_temperature({"calibration": {"temperature": 1.5}})
    1.5
    >>> recorded_temperature({"validation": {"accuracy": 1.0}}) is None
    True
    """
    record = (metrics or {}).get("calibration")
    return record.get("temperature") if isinstance(record, dict) else None


def summary(calibration: Optional[dict], metrics: Optional[dict] = None):
    """One sentence on a run's calibration record (and the errors its
    `metrics` hold), for reports and the model card.

    Example:
    >>> summary({"method": "temperature_scaling", "temperature": 1.8, "examples": 40},
    ...         {"validation": {"ece": 0.03, "ece_uncalibrated": 0.12}})
    'temperature scaling (T = 1.8) fitted on 40 validation examples; expected calibration error on validation 0.12 -> 0.03'
    """
    text = (f"temperature scaling (T = {calibration['temperature']:.4g}) fitted on "
            f"{calibration.get('examples', '?')} validation examples")
    errors = [f"{part} {values['ece_uncalibrated']:.3g} -> {values['ece']:.3g}"
              for part, values in ((part, (metrics or {}).get(part) or {})
                                   for part in ("validation", "test"))
              if "ece" in values and "ece_uncalibrated" in values]
    if errors:
        text += "; expected calibration error on " + ", ".join(errors)
    return text
