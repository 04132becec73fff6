"""`FinetuneResult`: the trained model and everything known about its run."""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

MODEL_FILE = "model.keras"


@dataclasses.dataclass
class FinetuneResult:
    """What `keras_tl.finetune` returns.

    Attributes:
        model: the trained `keras.Model` (RGB 0-255 images in, probabilities
            out; for text, token ids in).
        class_names: output index -> class name.
        histories: `{stage_name: {metric: [per-epoch values]}}`.
        metrics: `{"validation": {...}, "test": {...} or None}`.
        info: backbone, weights, input size and preprocessing.
        config: the run's settings (stages, batch size, seed...).
        output_dir: where the run's files are.

    Example:
    >>> result = keras_tl.finetune("flowers/")
    >>> result.predict(images)[0]
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

    @property
    def inference_model(self):
        """The model export and predict use (raw inputs in)."""
        task_model = getattr(self.task, "inference_model", None)
        return task_model if task_model is not None else self.model

    def predict(self, inputs, top=3):
        """Top classes for a batch of images (or texts, for a text model).

        Images may be in any form the training data could take: a list of
        file paths, or an array of grayscale or RGB images of any size,
        pixels in [0, 255]; a single `[H, W, 3]` image is a batch of one.

        Example:
        >>> result.predict(np.zeros((1, 28, 28)), top=1)
        [[('daisy', 0.41)]]
        """
        import numpy as np

        if self.info.get("modality", "image") == "image":
            from keras_tl.data.images import prepare_images

            if getattr(inputs, "ndim", 0) == 3 and inputs.shape[-1] in (3, 4):
                inputs = inputs[None]  # one RGB(A) image, not a grayscale batch
            inputs = prepare_images(inputs, tuple(self.info["input_size"])).astype("float32")
        probabilities = np.asarray(self.inference_model.predict(inputs, verbose=0))
        order = np.argsort(-probabilities, axis=1)[:, :top]
        return [
            [(self.class_names[i], float(row[i])) for i in idx]
            for row, idx in zip(probabilities, order)
        ]

    def save(self, output_dir):
        """Writes `model.keras`, `metrics.json`, `class_names.txt`,
        `run.json`, `training_curves.png` and `confusion_matrix.png`.

        Example:
        >>> result.save("runs/flowers")
        """
        from keras_tl import reports

        os.makedirs(output_dir, exist_ok=True)
        tmp = os.path.join(output_dir, "partial." + MODEL_FILE)
        self.inference_model.save(tmp)
        os.replace(tmp, os.path.join(output_dir, MODEL_FILE))
        _write_json(os.path.join(output_dir, "metrics.json"),
                    dict(self.metrics, histories=self.histories))
        with open(os.path.join(output_dir, "class_names.txt"), "w") as f:
            f.write("\n".join(self.class_names) + "\n")
        _write_json(os.path.join(output_dir, "run.json"),
                    dict(info=self.info, config=self.config, class_names=self.class_names))
        reports.plot_training_curves(self.histories, os.path.join(output_dir, "training_curves.png"))
        validation = getattr(self.task, "validation", None)
        if validation is not None:
            reports.plot_confusion_matrix(
                self.model, validation, self.class_names,
                os.path.join(output_dir, "confusion_matrix.png"))

    @classmethod
    def load(cls, output_dir):
        """Reloads a finished run's model (safe mode) and metadata.

        Example:
        >>> result = FinetuneResult.load("runs/flowers")
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
        if run["info"].get("modality") == "text":
            import keras_tl.tasks.text_classifier  # noqa: F401  (registers the pipeline)
        model = keras.saving.load_model(path, safe_mode=True)
        with open(os.path.join(output_dir, "metrics.json")) as f:
            metrics = json.load(f)
        histories = metrics.pop("histories", {})
        return cls(model=model, class_names=run["class_names"], histories=histories,
                   metrics=metrics, info=run["info"], config=run["config"],
                   output_dir=output_dir)


def _write_json(path, data):
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)
