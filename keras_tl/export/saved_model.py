"""SavedModel for TF Serving: two named signatures, class names inside.

Needs the TensorFlow backend (`keras_tl.export._backend` runs it in a
TensorFlow subprocess for models built under JAX or PyTorch).

Signatures (the contract documented in docs/serving.md):

- `serving_default`: `images` float32 `[batch, H, W, 3]`, RGB 0-255.
- `serving_bytes`: `image_bytes` string `[batch]`, encoded JPEG/PNG/GIF/BMP/
  WebP, decoded, EXIF-rotated and resized (bilinear, antialiased) to `H x W`
  in the graph by `keras_tl.data.image_decoding`, as training and predict
  read files.

Both return `probabilities` float32 `[batch, classes]`, `class_ids` int64
`[batch]` (the top class) and `class_names` string `[batch]`.
"""

import os
import tempfile

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
IMAGES_KEY = "images"
BYTES_KEY = "image_bytes"
OUTPUT_KEYS = ("probabilities", "class_ids", "class_names")
CLASS_NAMES_ASSET = "class_names.txt"


def build_serving_module(model, class_names, image_size):
    """A `tf.Module` with the two serving functions and the model's variables.

    Returns `(module, signatures)` ready for `tf.saved_model.save`.

    Example:
    >>> module, signatures = build_serving_module(model, ["cat", "dog"], (224, 224))
    >>> tf.saved_model.save(module, "out/1", signatures=signatures)
    """
    import tensorflow as tf

    from keras_tl.data.image_decoding import decode_and_resize

    height, width = image_size
    names = tf.constant([str(n) for n in class_names], dtype=tf.string)

    def outputs(images):
        probabilities = tf.cast(model(images, training=False), tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
        }

    image_spec = tf.TensorSpec([None, height, width, 3], tf.float32, name=IMAGES_KEY)
    bytes_spec = tf.TensorSpec([None], tf.string, name=BYTES_KEY)

    @tf.function(input_signature=[image_spec], autograph=False)
    def serve_images(images):
        # TF Serving does not check the signature's shape; the model would
        # answer for any size, so a wrong one is refused here.
        given = tf.shape(images)
        right_size = tf.equal(tf.size(given), 4) & tf.reduce_all(
            tf.equal(tf.pad(given, [[0, 3]])[1:4], [height, width, 3]))
        message = tf.strings.format(
            f"{DEFAULT_SIGNATURE} takes images of shape [batch, {height}, {width}, 3] "
            "(the input size of the model), got {}: resize them first, or send the "
            f"encoded files to {BYTES_SIGNATURE}", given)
        with tf.control_dependencies([tf.debugging.Assert(right_size, [message])]):
            return outputs(tf.identity(images))

    @tf.function(input_signature=[bytes_spec], autograph=False)
    def serve_bytes(image_bytes):
        def decode(data):
            # The ops keras_tl.data.images.read_image runs for training and predict.
            return tf.cast(decode_and_resize(data, (height, width)), tf.float32)

        images = tf.map_fn(
            decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )
        return outputs(images)

    signatures = {
        DEFAULT_SIGNATURE: serve_images.get_concrete_function(),
        BYTES_SIGNATURE: serve_bytes.get_concrete_function(),
    }
    module = tf.Module()
    module.serve_images = serve_images
    module.serve_bytes = serve_bytes
    # Track exactly the variables the functions read (as keras.export does):
    # this keeps the Keras object graph out of the SavedModel, so LiteRT's
    # converter can freeze the variables into constants.
    used = {}
    for function in signatures.values():
        for variable in function.variables:
            used[id(variable)] = variable
    module.model_variables = list(used.values())
    return module, signatures


def write_saved_model(model, path, class_names, image_size):
    """Writes the SavedModel (with `assets/class_names.txt`) to `path`.

    Example:
    >>> write_saved_model(model, "stage", ["cat", "dog"], (224, 224))
    """
    import tensorflow as tf

    module, signatures = build_serving_module(model, class_names, image_size)
    with tempfile.TemporaryDirectory() as tmp:
        asset = os.path.join(tmp, CLASS_NAMES_ASSET)
        with open(asset, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in class_names))
        module.class_names_file = tf.saved_model.Asset(asset)
        tf.saved_model.save(module, path, signatures=signatures)
    return path


def encode_png(images):
    """PNG bytes of each float32 RGB 0-255 image (values rounded to uint8).

    Example:
    >>> encode_png(np.zeros((2, 8, 8, 3), "float32"))[0][:4]
    b'\\x89PNG'
    """
    import tensorflow as tf

    pixels = np.clip(np.round(images), 0, 255).astype("uint8")
    return [tf.io.encode_png(image).numpy() for image in pixels]


def verify_saved_model(path, images, reference):
    """Max abs difference of each signature's probabilities to `reference`,
    and whether its `class_ids` / `class_names` agree with the argmax.

    `images` must be integer-valued (they go through PNG for `serving_bytes`).

    Example:
    >>> verify_saved_model("stage", images, model.predict(images))
    {'serving_default': {'max_abs_diff': 0.0, 'top_class_match': True}, ...}
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    class_names = read_class_names(path)
    feeds = {
        DEFAULT_SIGNATURE: {IMAGES_KEY: tf.constant(images, tf.float32)},
        BYTES_SIGNATURE: {BYTES_KEY: tf.constant(encode_png(images))},
    }
    expected_ids = np.argmax(reference, axis=-1)
    report = {}
    for name, feed in feeds.items():
        out = loaded.signatures[name](**feed)
        ids = out["class_ids"].numpy()
        names = [n.decode("utf-8") for n in out["class_names"].numpy()]
        report[name] = {
            "max_abs_diff": float(np.max(np.abs(out["probabilities"].numpy() - reference))),
            "top_class_match": bool(
                np.array_equal(ids, expected_ids)
                and names == [class_names[i] for i in expected_ids]
            ),
        }
    return report


def read_class_names(path):
    """Class names from a SavedModel's `assets/class_names.txt`.

    Example:
    >>> read_class_names("saved_models/flowers/1")
    ['daisy', 'roses', 'tulips']
    """
    with open(os.path.join(path, "assets", CLASS_NAMES_ASSET), encoding="utf-8") as f:
        return f.read().splitlines()
