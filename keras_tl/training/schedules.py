"""Learning-rate schedules for a stage: constant, or warm-up then cosine decay;
the rate a finished step used."""


def stage_learning_rate(stage, steps_per_epoch):
    """The learning rate (float or Keras schedule) of a stage.

    Example:
    >>> from keras_tl.training.stages import Stage
    >>> lr = stage_learning_rate(Stage("ft", epochs=2, learning_rate=1e-4, warmup=0.1,
    ...                                schedule="cosine"), steps_per_epoch=10)
    >>> [round(float(lr(step)), 8) for step in (0, 1, 2, 20)]
    [3.333e-05, 6.667e-05, 0.0001, 0.0]
    """
    import keras

    total = max(int(stage.epochs * steps_per_epoch), 1)
    warmup = int(round(stage.warmup * total))
    # the warm-up's first step at rate/(warmup + 1), not 0: a step at rate 0 changes no weight,
    # and on a small dataset (1-2 steps an epoch) that was a whole epoch
    start = stage.learning_rate / (warmup + 1)
    if stage.schedule == "constant" and warmup == 0:
        return stage.learning_rate
    if stage.schedule == "constant":
        # linear warm-up, then flat: a cosine that never decays
        return keras.optimizers.schedules.CosineDecay(
            start, decay_steps=1, alpha=1.0, warmup_target=stage.learning_rate,
            warmup_steps=warmup,
        )
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(stage.learning_rate, decay_steps=total)
    return keras.optimizers.schedules.CosineDecay(
        start, decay_steps=max(total - warmup, 1), warmup_target=stage.learning_rate,
        warmup_steps=warmup,
    )


def last_step_rate(optimizer):
    """The learning rate of the optimizer's last update. Keras updates at
    `schedule(iterations)` and then counts the step, so after an epoch
    `optimizer.learning_rate` is the next step's rate: 0 at the end of a
    cosine stage, a rate no step used.

    Example:
    >>> import keras
    >>> optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 4))
    >>> _ = optimizer.iterations.assign(4)  # a stage of 4 steps, done
    >>> float(optimizer.learning_rate), round(last_step_rate(optimizer), 8)
    (0.0, 0.00014645)
    """
    import keras

    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    rate = optimizer.get_config()["learning_rate"]  # a schedule's config, or the number
    if isinstance(rate, dict):
        step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        rate = keras.optimizers.schedules.deserialize(rate)(step)
    return float(keras.ops.convert_to_numpy(rate))
