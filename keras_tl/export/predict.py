"""Top classes from any exported format: SavedModel, ONNX or LiteRT.

Needs no Keras: images are decoded with PIL and resized (bilinear) to the
model's input size; preprocessing is inside every exported model.
"""

import os

import numpy as np

_BATCH = 32


def predict_top(export_path, image_paths, top=3):
    """Predicts the `top` classes of each image file.

    Args:
        export_path: a SavedModel version folder, the model's base folder
            (`saved_models/NAME`: its latest version), a `.onnx` file or a
            `.tflite` file.
        image_paths: image file paths (or one path).
        top: how many classes to return per image.

    Returns:
        `[(image_path, [(class_name, probability), ...]), ...]`, most
        probable class first.

    Example:
    >>> predict_top("saved_models/flowers", ["rose.jpg"], top=2)
    [('rose.jpg', [('roses', 0.93), ('tulips', 0.05)])]
    """
    if isinstance(image_paths, (str, os.PathLike)):
        image_paths = [image_paths]
    image_paths = [os.fspath(p) for p in image_paths]
    predictor = load_predictor(export_path)
    results = []
    for start in range(0, len(image_paths), _BATCH):
        chunk = image_paths[start:start + _BATCH]
        probabilities = predictor.predict(load_images(chunk, predictor.image_size))
        for path, row in zip(chunk, probabilities):
            order = np.argsort(-row, kind="stable")[:top]
            results.append((path, [(predictor.class_names[i], float(row[i])) for i in order]))
    return results


def load_images(paths, image_size):
    """float32 `[n, H, W, 3]` RGB 0-255 from image files (EXIF-rotated).

    Example:
    >>> load_images(["rose.jpg"], (224, 224)).shape
    (1, 224, 224, 3)
    """
    from keras_tl.data.images import prepare_images

    return prepare_images(list(paths), image_size).astype("float32")


def load_predictor(export_path):
    """A `Predictor` for the format found at `export_path`.

    Example:
    >>> predictor = load_predictor("saved_models/flowers/2/model.onnx")
    >>> predictor.format, predictor.image_size
    ('onnx', (224, 224))
    """
    path = os.fspath(export_path)
    if os.path.isfile(path) and path.endswith(".onnx"):
        return _OnnxPredictor(path)
    if os.path.isfile(path) and path.endswith(".tflite"):
        return _LiteRTPredictor(path)
    if os.path.isdir(path):
        return _SavedModelPredictor(saved_model_dir(path))
    raise FileNotFoundError(
        f"No export at {path!r}: expected a SavedModel folder, a model base "
        "folder with numbered versions, a .onnx file or a .tflite file."
    )


def export_modality(export_path):
    """`"image"` or `"text"`, from the export's `keras_tl.json`.

    Example:
    >>> export_modality("saved_models/reviews")
    'text'
    """
    import json

    path = os.fspath(export_path)
    folder = os.path.dirname(path) if os.path.isfile(path) else saved_model_dir(path)
    meta = os.path.join(folder, "keras_tl.json")
    if not os.path.exists(meta):
        return "image"
    with open(meta, encoding="utf-8") as f:
        return json.load(f).get("modality", "image")


def saved_model_dir(path):
    """The SavedModel folder of `path`: itself, or its latest version.

    Example:
    >>> saved_model_dir("saved_models/flowers")
    'saved_models/flowers/2'
    """
    from keras_tl.export._versioning import list_versions

    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    for version in reversed(list_versions(path)):
        candidate = os.path.join(path, str(version))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"No saved_model.pb in {path!r} nor in a numbered version folder.")


class Predictor:
    """Runs one exported format. Attributes: `format`, `path`, `image_size`
    (height, width), `class_names`; `predict(images)` returns probabilities.

    Example:
    >>> predictor = load_predictor("saved_models/flowers/1/model.onnx")
    >>> predictor.predict(np.zeros((1, *predictor.image_size, 3))).shape
    (1, 5)
    """

    format = None

    def __init__(self, path):
        self.path = path
        self.image_size = None
        self.class_names = None

    def predict(self, images):
        raise NotImplementedError

    def _names_from_metadata(self, count):
        from keras_tl.export.metadata import read_metadata

        meta = read_metadata(self.path) or {}
        names = meta.get("class_names")
        return names if names else [f"class_{i}" for i in range(count)]


class _SavedModelPredictor(Predictor):
    format = "saved_model"

    def __init__(self, path):
        super().__init__(path)
        import tensorflow as tf

        from keras_tl.export.saved_model import read_class_names

        self._fn = tf.saved_model.load(path).signatures["serving_default"]
        spec = self._fn.structured_input_signature[1]["images"]
        self.image_size = (int(spec.shape[1]), int(spec.shape[2]))
        self.class_names = read_class_names(path)

    def predict(self, images):
        import tensorflow as tf

        return self._fn(images=tf.constant(images, tf.float32))["probabilities"].numpy()


class _OnnxPredictor(Predictor):
    format = "onnx"

    def __init__(self, path):
        super().__init__(path)
        import onnxruntime

        from keras_tl.export.onnx import read_onnx_class_names

        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        model_input = self._session.get_inputs()[0]
        self._input = model_input.name
        self.image_size = (int(model_input.shape[1]), int(model_input.shape[2]))
        classes = self._session.get_outputs()[0].shape[-1]
        self.class_names = read_onnx_class_names(path) or self._names_from_metadata(classes)

    def predict(self, images):
        return self._session.run(None, {self._input: images})[0]


class _LiteRTPredictor(Predictor):
    format = "litert"

    def __init__(self, path):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        self._runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        shape = self._runner.get_input_details()["images"]["shape"]
        self.image_size = (int(shape[1]), int(shape[2]))
        classes = int(self._runner.get_output_details()["probabilities"]["shape"][-1])
        self.class_names = self._names_from_metadata(classes)

    def predict(self, images):
        return self._runner(images=images)["probabilities"]
