"""Learning-rate schedules for a stage: constant, or warm-up then cosine decay."""


def stage_learning_rate(stage, steps_per_epoch):
    """The learning rate (float or Keras schedule) of a stage.

    Example:
    >>> from keras_tl.training.stages import Stage
    >>> lr = stage_learning_rate(Stage("ft", epochs=2, learning_rate=1e-4, warmup=0.1,
    ...                                schedule="cosine"), steps_per_epoch=10)
    >>> [round(float(lr(step)), 8) for step in (0, 2, 20)]
    [0.0, 0.0001, 0.0]
    """
    import keras

    total = max(int(stage.epochs * steps_per_epoch), 1)
    warmup = int(round(stage.warmup * total))
    if stage.schedule == "constant" and warmup == 0:
        return stage.learning_rate
    if stage.schedule == "constant":
        # linear warm-up, then flat: a cosine that never decays
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=1, alpha=1.0, warmup_target=stage.learning_rate,
            warmup_steps=warmup,
        )
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(stage.learning_rate, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(total - warmup, 1), warmup_target=stage.learning_rate,
        warmup_steps=warmup,
    )
