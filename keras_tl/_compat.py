"""Every private Keras and keras_hub API keras_tl uses, one function each.

Keras has no public way to do these; when a release moves one, this is the
file to change. Each was checked on Keras 3.15.1 and keras_hub 0.32.0.

Not routed here: `AdamWithRateFactors._apply_weight_decay` in
`keras_tl.training.optimizers` overrides the private optimizer hook itself
(checked on Keras 3.15.1), and `MatchingLabelEncoder._encode_sample` in
`keras_tl.models.retinanet` overrides keras_hub's `RetinaNetLabelEncoder`
hook (checked on keras_hub 0.32.0); an override cannot be a function call.

Example:
>>> import keras
>>> inputs = keras.Input((2,), name="pixels")
>>> model = keras.Model(inputs, keras.layers.Dense(1, name="dense")(inputs))
>>> [layer.name for layer in flatten_layers(model, include_self=False)]
['pixels', 'dense']
"""


def flatten_layers(layer, include_self=True, recursive=True):
    """`layer` and every layer it holds, nested ones included (what Keras
    tracks, also layers not in `model.layers`, e.g. inside a keras_hub
    block). Keras 3.15.1: `Layer._flatten_layers`.

    Example:
    >>> import keras
    >>> block = keras.Sequential([keras.layers.Dense(1, name="inner")], name="block")
    >>> [l.name for l in flatten_layers(keras.Sequential([block], name="outer"))]
    ['outer', 'block', 'inner']
    """
    return layer._flatten_layers(include_self=include_self, recursive=recursive)


def own_variables(layer):
    """The variables `layer` itself creates, not those of its sub-layers, in
    the order Keras saves them. Keras 3.15.1: `Layer._trainable_variables +
    Layer._non_trainable_variables`.

    Example:
    >>> import keras
    >>> norm = keras.layers.BatchNormalization()
    >>> norm.build((None, 3))
    >>> [v.name for v in own_variables(norm)]
    ['gamma', 'beta', 'moving_mean', 'moving_variance']
    """
    return layer._trainable_variables + layer._non_trainable_variables


def set_own_trainable(layer, trainable):
    """Sets `layer.trainable` without setting it on its sub-layers and
    variables (the public setter recurses). Keras 3.15.1: `Layer._trainable`.

    Example:
    >>> import keras
    >>> block = keras.Sequential([keras.layers.Dense(1)])
    >>> block.trainable = False
    >>> set_own_trainable(block, True)
    >>> block.trainable, block.layers[0].trainable
    (True, False)
    """
    layer._trainable = trainable


def freeze_lora_base_kernel(layer):
    """Freezes the base kernel of a layer with LoRA enabled, as Keras'
    `enable_lora` leaves it. Keras 3.15.1: `Dense._kernel` / `EinsumDense._kernel`.

    Example:
    >>> import keras
    >>> dense = keras.layers.Dense(2)
    >>> dense.build((None, 3))
    >>> dense.enable_lora(1)
    >>> dense._kernel.trainable = True
    >>> freeze_lora_base_kernel(dense)
    >>> dense._kernel.trainable
    False
    """
    layer._kernel.trainable = False


def lora_rank(backbone):
    """The LoRA rank a keras_hub `Backbone` was given, or `None`.
    keras_hub 0.32.0: `Backbone._lora_rank`, set by `enable_lora`.

    Example:
    >>> import keras
    >>> lora_rank(keras.Sequential()) is None
    True
    """
    return getattr(backbone, "_lora_rank", None)


def producing_layer(tensor):
    """The layer whose output a symbolic tensor is. Keras 3.15.1:
    `KerasTensor._keras_history.operation`.

    Example:
    >>> import keras
    >>> inputs = keras.Input((2,))
    >>> producing_layer(keras.layers.Dense(1, name="out")(inputs)).name
    'out'
    """
    return tensor._keras_history.operation


def drop_distribute_strategy(model):
    """Makes `model` forget the `tf.distribute` strategy it was built under
    (for single-device inference); `False` when it has none to forget.
    Keras 3.15.1: `Model._distribute_strategy`, which has no public setter.

    Example:
    >>> import keras
    >>> drop_distribute_strategy(object())
    False
    """
    if not hasattr(model, "_distribute_strategy"):
        return False
    model._distribute_strategy = None
    return True


def variable_index(optimizer, variable):
    """The position of `variable` in the optimizer's built variable list
    (what per-variable slots are indexed by). Keras 3.15.1:
    `BaseOptimizer._get_variable_index`.

    Example:
    >>> import keras
    >>> weights = [keras.Variable([1.0]), keras.Variable([2.0])]
    >>> optimizer = keras.optimizers.SGD()
    >>> optimizer.build(weights)
    >>> variable_index(optimizer, weights[1])
    1
    """
    return optimizer._get_variable_index(variable)


def correct_pad(inputs, kernel_size):
    """The zero padding TensorFlow's `"same"` gives a stride-2 convolution,
    for the `"valid"` one keras.applications uses. Keras 3.15.1:
    `keras.src.applications.imagenet_utils.correct_pad`.

    Example:
    >>> import keras
    >>> correct_pad(keras.Input((8, 8, 3)), 3)
    ((0, 1), (0, 1))
    """
    from keras.src.applications import imagenet_utils  # private module, not in keras' namespace

    return imagenet_utils.correct_pad(inputs, kernel_size)


def preprocessor_class(base, backbone):
    """The keras_hub subclass of `base` (e.g. `TextClassifierPreprocessor`)
    made for the class of `backbone`. keras_hub 0.32.0:
    `keras_hub.src.utils.preset_utils.find_subclass`.

    Example:
    >>> import keras_hub
    >>> bert = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=1,
    ...                                      hidden_dim=2, intermediate_dim=2)
    >>> preprocessor_class(keras_hub.models.TextClassifierPreprocessor, bert).__name__
    'BertTextClassifierPreprocessor'
    """
    from keras_hub.src.utils.preset_utils import find_subclass  # optional dependency: text only

    return find_subclass(backbone.name, base, type(backbone))



def retinanet_label_encoder_class():
    """keras_hub's `RetinaNetLabelEncoder` (the anchor targets its RetinaNet
    trains on), which it does not export. keras_hub 0.32.0:
    `keras_hub.src.models.retinanet.retinanet_label_encoder`.

    Example:
    >>> retinanet_label_encoder_class().__name__
    'RetinaNetLabelEncoder'
    """
    from keras_hub.src.models.retinanet.retinanet_label_encoder import RetinaNetLabelEncoder

    return RetinaNetLabelEncoder
