"""The demo job written by hand, after the Keras transfer-learning guide
(https://keras.io/guides/transfer_learning/): what a user would write
without keras_tl, the baseline `vs_hand_keras.py` times keras_tl against.

Same backbone weights (keras_tl's offline torchvision MobileNetV2 port), same
data (the packaged Fashion-MNIST sample), same train/validation split
(stratified, seeded) and the demo's epochs (3 with the backbone frozen, 5
fine-tuning). As in the guide: the backbone is called with
`training=False` (BatchNorm stays in inference mode), the images are resized
in `tf.data` and cached, the head trains with Adam at its default rate,
then everything is unfrozen and trained at 1e-5.

    python benchmarks/hand_keras.py [--train-per-class 100] [--head-epochs 3] [--finetune-epochs 5]
"""

import argparse
import json
import time

import numpy as np

IMAGE_SIZE = 96
BACKBONE = "mobilenet_v2_torch"


def run(train_per_class=100, test_per_class=100, image_size=IMAGE_SIZE, head_epochs=3,
        finetune_epochs=5, batch_size=32, validation_split=0.1, seed=0,
        finetune_learning_rate=1e-5, verbose=0):
    """Runs the hand-written job; returns its test accuracy and timings.

    Example:
    >>> run(train_per_class=10, test_per_class=10, head_epochs=1, finetune_epochs=1)["test_accuracy"] > 0  # doctest: +SKIP
    True
    """
    import keras
    import tensorflow as tf

    import keras_tl
    from keras_tl.data.splits import stratified_split
    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    (x, y), (x_test, y_test), names = load_fashion_mnist_sample(train_per_class, test_per_class)
    train_idx, val_idx = stratified_split(y, validation_split, seed)

    def dataset(images, labels, shuffle=False):
        data = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
        # grayscale 28x28 -> RGB at the backbone's size, once: cached after the first epoch
        data = data.map(lambda image, label: (
            tf.image.grayscale_to_rgb(tf.image.resize(
                tf.cast(image[..., None], "float32"), (image_size, image_size))), label))
        data = data.cache()
        if shuffle:
            data = data.shuffle(len(labels), seed=seed)
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    train = dataset(x[train_idx], y[train_idx], shuffle=True)
    validation = dataset(x[val_idx], y[val_idx])
    test = dataset(x_test, y_test)

    base_model = keras_tl.load_backbone(BACKBONE, image_size=image_size).model
    base_model.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    # torchvision's ImageNet normalisation, written by hand
    mean = np.array([0.485, 0.456, 0.406]) * 255
    std = np.array([0.229, 0.224, 0.225]) * 255
    x_in = keras.layers.Normalization(mean=mean, variance=std ** 2)(inputs)
    features = base_model(x_in, training=False)
    features = keras.layers.GlobalAveragePooling2D()(features)
    features = keras.layers.Dropout(0.2)(features)
    outputs = keras.layers.Dense(len(names), activation="softmax")(features)
    model = keras.Model(inputs, outputs)

    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    head_start = time.perf_counter()
    model.fit(train, epochs=head_epochs, validation_data=validation, verbose=verbose)
    head_seconds = time.perf_counter() - head_start

    base_model.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(finetune_learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    model.fit(train, epochs=finetune_epochs, validation_data=validation, verbose=verbose)
    _, validation_accuracy = model.evaluate(validation, verbose=0)
    _, test_accuracy = model.evaluate(test, verbose=0)
    return dict(test_accuracy=float(test_accuracy), validation_accuracy=float(validation_accuracy),
                seconds=time.perf_counter() - start, head_seconds=head_seconds,
                settings=dict(backbone=BACKBONE, image_size=image_size, head_epochs=head_epochs,
                              finetune_epochs=finetune_epochs, batch_size=batch_size,
                              validation_split=validation_split, seed=seed,
                              head_learning_rate=1e-3,
                              finetune_learning_rate=finetune_learning_rate,
                              train_images=int(len(train_idx)), test_images=int(len(y_test))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args()
    result = run(args.train_per_class, args.test_per_class, head_epochs=args.head_epochs,
                 finetune_epochs=args.finetune_epochs, verbose=args.verbose)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
