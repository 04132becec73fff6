"""LiteRT (TFLite) models converted from the SavedModel's `serving_default`.

Two files: `model_float32.tflite` and `model_int8.tflite` (dynamic-range
quantization: int8 weights, float32 activations, same inputs and outputs).
Each has one signature, `serving_default`: input `images` float32
`[batch, H, W, 3]` RGB 0-255; outputs `probabilities`, `class_ids`,
`class_names`, as in the SavedModel.
"""

import os

import numpy as np

FLOAT32_FILE = "model_float32.tflite"
INT8_FILE = "model_int8.tflite"


def convert_litert(saved_model_dir, out_dir):
    """Writes the float32 and int8 `.tflite` files; returns their paths.

    Example:
    >>> convert_litert("saved_models/flowers/1", "saved_models/flowers/1")
    {'litert_float32': '.../model_float32.tflite', 'litert_int8': '.../model_int8.tflite'}
    """
    import tensorflow as tf

    paths = {}
    for key, filename, quantize in (
        ("litert_float32", FLOAT32_FILE, False),
        ("litert_int8", INT8_FILE, True),
    ):
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=["serving_default"]
        )
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        paths[key] = os.path.join(out_dir, filename)
        with open(paths[key], "wb") as f:
            f.write(converter.convert())
    return paths


def run_litert(path, images):
    """All outputs of a `.tflite` file's `serving_default` for a batch.

    Example:
    >>> run_litert("model_float32.tflite", images)["probabilities"].shape
    (8, 3)
    """
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=os.fspath(path)).get_signature_runner("serving_default")
    return runner(images=np.asarray(images, dtype="float32"))


def verify_litert(paths, images, reference):
    """Float32 max abs difference to `reference`, int8 argmax agreement, sizes.

    Example:
    >>> verify_litert(paths, images, model.predict(images))["int8_argmax_agreement"]
    1.0
    """
    expected = np.argmax(reference, axis=-1)
    float_out = run_litert(paths["litert_float32"], images)["probabilities"]
    int8_out = run_litert(paths["litert_int8"], images)["probabilities"]
    return {
        "float32_max_abs_diff": float(np.max(np.abs(float_out - reference))),
        "float32_argmax_agreement": float(np.mean(np.argmax(float_out, -1) == expected)),
        "int8_max_abs_diff": float(np.max(np.abs(int8_out - reference))),
        "int8_argmax_agreement": float(np.mean(np.argmax(int8_out, -1) == expected)),
        "float32_bytes": os.path.getsize(paths["litert_float32"]),
        "int8_bytes": os.path.getsize(paths["litert_int8"]),
    }
