"""`MODEL_CARD.md`: the export's model card, written into the version folder.

Built from the export's `keras_tl.json` content alone (so every task gets
the same card from its own facts): the task and its classes, how much
data trained and measured it, the metrics and the set each was measured
on (with a 95 % interval for accuracy), the calibration the run recorded
(`calibration` in its info or metrics) or "not calibrated", the input
contract of every signature, and the intended use and limitations that
follow from those numbers.
"""

import math
import os

MODEL_CARD_FILE = "MODEL_CARD.md"
_MAX_CLASSES_LISTED = 100


def model_card(meta, model_name):
    """The Markdown model card of an export whose metadata is `meta`.

    Example:
    >>> card = model_card({"task": "image_classification", "modality": "image",
    ...                    "class_names": ["cat", "dog"], "info": {"num_train": 80,
    ...                    "num_validation": 20, "num_test": 50},
    ...                    "metrics": {"validation": {"accuracy": 0.9}, "test": {"accuracy": 0.8}},
    ...                    "signatures": {}}, "pets")
    >>> print(card[:card.index("## Calibration")].strip())  # doctest: +NORMALIZE_WHITESPACE
    # Model card: pets
    <BLANKLINE>
    ## Task
    <BLANKLINE>
    image_classification (image inputs); 2 classes: `cat`, `dog`.
    <BLANKLINE>
    ## Data
    <BLANKLINE>
    - training: 80 examples
    - validation: 20 examples
    - test: 50 examples
    <BLANKLINE>
    ## Metrics
    <BLANKLINE>
    | metric | validation (20 examples) | test (50 examples) |
    |---|---|---|
    | accuracy | 0.9 | 0.8 |
    <BLANKLINE>
    Test accuracy 0.8 on 50 examples: 95 % interval 0.67-0.89 (Wilson).
    """
    info, metrics = meta.get("info") or {}, meta.get("metrics") or {}
    class_names = list(meta.get("class_names") or [])
    lines = [f"# Model card: {model_name}", "", "## Task", "",
             f"{meta.get('task')} ({meta.get('modality')} inputs); {_classes(class_names)}"]
    facts = [f"{key}: {_value(info[key])}" for key in ("backbone", "weights", "backbone_source")
             if info.get(key) is not None]
    if facts:
        lines += [""] + [f"- {fact}" for fact in facts]
    lines += ["", "## Data", ""] + _data(info, meta.get("training") or {})
    lines += ["", "## Metrics", ""] + _metrics(metrics, info)
    lines += ["", "## Calibration", "", _calibration(info, metrics)]
    lines += ["", "## Input contract", ""] + _contract(meta.get("signatures") or {}, info)
    lines += ["", "## Intended use", "", _intended_use(meta, class_names)]
    lines += ["", "## Limitations", ""] + [f"- {item}" for item in _limitations(meta, info,
                                                                                  metrics)]
    verification = {key: report for key, report in (meta.get("verification") or {}).items()
                    if isinstance(report, dict) and "max_abs_diff" in report}
    if verification:
        lines += ["", "## Export verification", "",
                  f"Each format against the Keras model on {meta['verification'].get('inputs')} "
                  "inputs (largest absolute difference of any float output):", ""]
        lines += [f"- {key}: {report['max_abs_diff']:.3g}"
                  + ("" if report.get("enforced", True) else " (recorded, not enforced)")
                  + _gate_line(report.get("gate"))
                  for key, report in verification.items()]
    return "\n".join(lines) + "\n"


def _gate_line(gate):
    """A lossy variant's write-or-not decision, for its verification line."""
    if not gate:
        return ""
    metric = gate["metric"]
    decision = "written" if gate["written"] else "not written"
    return (f"; {metric} {gate[metric]:.3f} (threshold {gate['threshold']}): {decision}, "
            f"calibrated on {gate['calibration']}")


def write_model_card(directory, meta, model_name):
    """Writes `directory/MODEL_CARD.md`; returns its path.

    Example:
    >>> write_model_card("saved_models/flowers/1", meta, "flowers")  # doctest: +SKIP
    'saved_models/flowers/1/MODEL_CARD.md'
    """
    path = os.path.join(directory, MODEL_CARD_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(model_card(meta, model_name))
    return path


def wilson_interval(successes, total, z=1.96):
    """The Wilson score interval of a proportion (95 % by default).

    Example:
    >>> [round(v, 3) for v in wilson_interval(40, 50)]
    [0.67, 0.888]
    """
    if total <= 0:
        return (0.0, 1.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _classes(class_names):
    shown = ", ".join(f"`{name}`" for name in class_names[:_MAX_CLASSES_LISTED])
    more = len(class_names) - _MAX_CLASSES_LISTED
    return (f"{len(class_names)} classes: {shown}" + (f" and {more} more (see "
            "assets/class_names.txt)." if more > 0 else "."))


def _data(info, training):
    lines = []
    for part, label in (("train", "training"), ("validation", "validation"), ("test", "test")):
        count = info.get(f"num_{part}")
        if count is not None:
            lines.append(f"- {label}: {count} examples" if count else f"- {label}: none")
    if not lines:
        lines.append("- not recorded in the run's info")
    data = training.get("data") or {}
    train = data.get("train")
    if isinstance(train, dict):
        described = ", ".join(f"{key} {_value(value)}" for key, value in train.items())
        lines.append(f"- training data: {described}")
    if data.get("validation") is None and training.get("validation_split"):
        lines.append(f"- validation: {training['validation_split']:.0%} of the training data, "
                     "held out before training")
    return lines


def _metrics(metrics, info):
    parts = [part for part in ("validation", "test") if metrics.get(part)]
    if not parts:
        return ["No metrics were recorded (the model was exported without its run)."]
    names = []
    for part in parts:
        names += [name for name, value in metrics[part].items()
                  if name not in names and isinstance(value, (int, float))]
    header = [f"{part} ({info[f'num_{part}']} examples)" if info.get(f"num_{part}")
              else part for part in parts]
    lines = ["| metric | " + " | ".join(header) + " |", "|---" * (len(parts) + 1) + "|"]
    for name in names:
        cells = [_number(metrics[part].get(name)) for part in parts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not metrics.get("test"):
        lines += ["", "No test set was given: the validation set is the only held-out "
                  "measure, and training may have used it to decide when to stop, so expect "
                  "somewhat lower numbers on new data."]
    part = "test" if metrics.get("test") else "validation"
    accuracy, count = metrics[part].get("accuracy"), info.get(f"num_{part}")
    if isinstance(accuracy, (int, float)) and count:
        low, high = wilson_interval(round(accuracy * count), count)
        lines += ["", f"{part.capitalize()} accuracy {_number(accuracy)} on {count} examples: "
                  f"95 % interval {low:.2f}-{high:.2f} (Wilson)."]
    return lines


def _calibration(info, metrics):
    calibration = info.get("calibration", metrics.get("calibration"))
    if isinstance(calibration, dict) and calibration.get("method") == "temperature_scaling":
        from keras_tl.tasks.calibration import summary  # no Keras import

        return ("Calibrated: the probabilities are softmax(logits / T), "
                + summary(calibration, metrics) + " (15 equal-width bins).")
    if isinstance(calibration, dict) and calibration.get("skipped"):
        return ("Not calibrated (" + str(calibration["skipped"]) + "): the scores are the "
                "model's outputs as trained, not checked against how often it is right; do "
                "not read them as probabilities.")
    if not calibration:
        return ("Not calibrated: the scores are the model's outputs as trained, not checked "
                "against how often it is right; do not read them as probabilities.")
    if isinstance(calibration, dict):
        return "Calibrated: " + ", ".join(f"{key} {_value(value)}"
                                          for key, value in calibration.items()) + "."
    return f"Calibrated: {_value(calibration)}."


def _contract(signatures, info):
    lines = []
    for name, contract in signatures.items():
        lines.append(f"- `{name}`: "
                     + ", ".join(f"`{key}` {_tensor(value)}"
                                 for key, value in contract.get("inputs", {}).items())
                     + " -> " + ", ".join(f"`{key}` {_tensor(value)}"
                                          for key, value in contract.get("outputs", {}).items()))
    if not lines:
        lines.append("- see keras_tl.json")
    preprocessing = info.get("preprocessing")
    if preprocessing:
        lines.append(f"- preprocessing (inside the model): {_value(preprocessing)}")
    for key in ("input_size", "sequence_length", "sample_rate", "clip_samples", "nms"):
        if info.get(key) is not None:
            lines.append(f"- {key}: {_value(info[key])}")
    return lines


def _intended_use(meta, class_names):
    task = str(meta.get("task")).replace("_", " ").capitalize()
    return (f"{task} of {meta.get('modality')} inputs like the training data, for the "
            f"{len(class_names)} classes above; where a mistake is costly, a person or a "
            "downstream check should review its outputs.")


def _limitations(meta, info, metrics):
    items = [f"It knows only the {len(meta.get('class_names') or [])} classes above: anything "
             "else is given one of them, or missed."]
    count = info.get("num_train")
    if count is not None:
        items.append(f"Trained on {count} examples: inputs unlike them (other sources, devices, "
                     "languages, lighting or noise) may score much worse than the metrics say.")
    if not metrics.get("test"):
        items.append("No separate test set measured it.")
    items.append("Not evaluated for differences between groups of people or for adversarial "
                 "inputs.")
    return items


def _tensor(contract):
    shape = contract.get("shape")
    dims = "" if shape is None else "[" + ", ".join("batch" if d is None and i == 0
                                                    else "?" if d is None else str(d)
                                                    for i, d in enumerate(shape)) + "]"
    return f"{contract.get('dtype', '?')}{dims}"


def _number(value):
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _value(value):
    if isinstance(value, dict):
        return "; ".join(f"{key} {_value(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return "x".join(str(item) for item in value) if all(
            isinstance(item, int) for item in value) else ", ".join(map(str, value))
    return str(value)
