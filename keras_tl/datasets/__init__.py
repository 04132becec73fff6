"""Small real datasets shipped with keras_tl, for examples and demos."""
