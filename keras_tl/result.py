"""`FinetuneResult`: the trained model and everything known about its run."""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

MODEL_FILE = "model.keras"
SAMPLE_FILE = "verification_sample.npz"  # real validation inputs, to verify exports on
REPRESENTATIVE_FILE = "representative_sample.npz"  # real training inputs, to calibrate int8 on


@dataclasses.dataclass
class FinetuneResult:
    """What `keras_tl.finetune` returns.

    Attributes:
        model: the trained `keras.Model` (the task's model inputs in).
        class_names: output index -> class name.
        histories: `{stage_name: {metric: [per-epoch values]}}`.
        metrics: `{"validation": {...}, "test": {...} or None}`.
        info: backbone, weights, input size and preprocessing.
        config: the run's settings (stages, batch size, seed...).
        output_dir: where the run's files are.

    Example:
    >>> result = keras_tl.finetune("flowers/")  # doctest: +SKIP
    >>> result.predict(["flowers/daisy/1.jpg"])[0]  # doctest: +SKIP
    [('daisy', 0.97), ('tulips', 0.02), ('roses', 0.01)]
    """

    model: Any
    class_names: List[str]
    histories: Dict[str, Dict[str, List[float]]]
    metrics: Dict[str, Optional[Dict[str, float]]]
    info: Dict[str, Any]
    config: Dict[str, Any]
    output_dir: Optional[str] = None
    stages: Optional[list] = None
    task: Any = None
    exports: Any = None
    verification_sample: Any = None
    representative_sample: Any = None

    @property
    def inference_model(self):
        """The model export and predict use (raw inputs in)."""
        task_model = getattr(self.task, "inference_model", None)
        return task_model if task_model is not None else self.model

    @property
    def temperature(self):
        """The softmax temperature the run fitted on its validation data and
        put in the model (`metrics["calibration"]`), or `None` (not
        calibrated: `calibrate=False`, too little validation data, an older
        run or another task).

        Example:
        >>> FinetuneResult(model=None, class_names=[], histories={}, config={}, info={},
        ...                metrics={"calibration": {"temperature": 1.5}}).temperature
        1.5
        """
        record = (self.metrics or {}).get("calibration")
        return record.get("temperature") if isinstance(record, dict) else None

    @property
    def task_contract(self):
        """The run's `keras_tl.tasks.Task` (from `info["task"]`)."""
        from keras_tl.tasks import task_of

        return task_of(self.info)

    def predict(self, inputs, top=3, tta=False):
        """The task's predictions for a batch of raw inputs: for a
        classifier, its `top` classes with probabilities.
        `tta=True` (test-time augmentation; image classifiers): the mean
        probabilities over each image and its horizontal flip
        (`keras_tl.tasks.image_classifier.ImageClassification.tta_views`).

        Images may be in any form the training data could take: a list of
        file paths, or an array of grayscale or RGB images of any size,
        pixels in [0, 255]; a single `[H, W, 3]` image is a batch of one.
        Texts are a list of strings. A calibrated classifier's
        probabilities are the temperature-scaled ones (`temperature`).

        Example:
        >>> result.predict(np.zeros((1, 28, 28)), top=1)  # doctest: +SKIP
        [[('daisy', 0.41)]]
        """
        import numpy as np

        task = self.task_contract
        model_inputs = task.prepare_inputs(inputs, self.info)

        def predict(batch):
            return self.inference_model.predict(batch, verbose=0)

        if tta:
            outputs = task.tta_outputs(predict, model_inputs, self.info)
            if outputs is None:
                from keras_tl.errors import ConfigError
                from keras_tl.tasks.registry import tta_tasks

                raise ConfigError(
                    f"tta=True: test-time augmentation is for {', '.join(tta_tasks())} runs; "
                    f"this is a {task.name} run.")
        else:
            outputs = predict(model_inputs)
        if not isinstance(outputs, dict):
            outputs = np.asarray(outputs)
        return task.postprocess(outputs, self.class_names, top=top, inputs=inputs, info=self.info)

    def as_backbone(self, input_size=None):
        """This run's trained backbone with its preprocessing, the head
        dropped: how `keras_tl.load_backbone(result)` starts the next run
        from it (image classifiers only).

        Example:
        >>> result.as_backbone().weights  # doctest: +SKIP
        'fine-tuned (run runs/flowers)'
        """
        # local: keras_tl.backbones imports Keras, which a bare result need not
        from keras_tl.backbones.builder import from_trained_classifier

        return from_trained_classifier(self.model, dict(self.info), f"run {self.output_dir}",
                                       input_size)

    def save(self, output_dir):
        """Writes `model.keras`, `metrics.json`, `class_names.txt`,
        `run.json` and the task's reports (training curves, confusion
        matrix...).

        Example:
        >>> result.save("runs/flowers")  # doctest: +SKIP
        """
        os.makedirs(output_dir, exist_ok=True)
        tmp = os.path.join(output_dir, "partial." + MODEL_FILE)
        self.inference_model.save(tmp)
        os.replace(tmp, os.path.join(output_dir, MODEL_FILE))
        _write_json(os.path.join(output_dir, "metrics.json"),
                    dict(self.metrics, histories=self.histories))
        with open(os.path.join(output_dir, "class_names.txt"), "w") as f:
            f.write("\n".join(self.class_names) + "\n")
        processes = (self.config.get("distribution") or {}).get("num_processes", 1)
        _write_json(os.path.join(output_dir, "run.json"),
                    dict(info=self.info, config=self.config, class_names=self.class_names,
                         num_processes=processes))
        for name, sample in ((SAMPLE_FILE, self.verification_sample),
                             (REPRESENTATIVE_FILE, self.representative_sample)):
            if sample is not None:
                _write_sample(os.path.join(output_dir, name), sample)
        self.task_contract.write_reports(self, output_dir)

    @classmethod
    def load(cls, output_dir):
        """Reloads a finished run's model (safe mode) and metadata.

        Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> FinetuneResult(model=model, class_names=["cat", "dog"], histories={},
        ...                metrics={"validation": {"accuracy": 0.5}, "test": None},
        ...                info={"task": "image_classification"}, config={}
        ...                ).save(str(tmp_path / "run"))
        >>> result = FinetuneResult.load(str(tmp_path / "run"))
        >>> result.class_names, result.metrics["validation"]
        (['cat', 'dog'], {'accuracy': 0.5})
        """
        import keras

        import keras_tl.layers  # noqa: F401  (registers custom layers)

        path = os.path.join(output_dir, MODEL_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{output_dir} holds no {MODEL_FILE}; is it the output folder of a "
                "finished keras_tl run?")
        with open(os.path.join(output_dir, "run.json")) as f:
            run = json.load(f)
        import keras_tl

        keras_tl.register_serializables()  # the command line imports lazily
        model = keras.saving.load_model(path, safe_mode=True)
        with open(os.path.join(output_dir, "metrics.json")) as f:
            metrics = json.load(f)
        histories = metrics.pop("histories", {})
        sample, representative = (_read_sample(os.path.join(output_dir, name))
                                  for name in (SAMPLE_FILE, REPRESENTATIVE_FILE))
        return cls(model=model, class_names=run["class_names"], histories=histories,
                   metrics=metrics, info=run["info"], config=run["config"],
                   output_dir=output_dir, verification_sample=sample,
                   representative_sample=representative)


def _read_sample(path):
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["inputs"]


def _write_sample(path, inputs):
    tmp = path + ".partial.npz"
    np.savez_compressed(tmp, inputs=np.asarray(inputs))
    os.replace(tmp, path)


def _write_json(path, data):
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)


def load(run_dir):
    """Reloads a finished run: `keras_tl.load("runs/flowers")`, the same as
    `FinetuneResult.load`.

    Example:
    >>> keras_tl.load("runs/flowers").class_names  # doctest: +SKIP
    ['daisy', 'roses']
    """
    return FinetuneResult.load(run_dir)
