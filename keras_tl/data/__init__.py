"""Data loading: folders, arrays, tf.data and TFDS, split and batched."""
