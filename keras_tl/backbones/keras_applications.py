"""Every image model of `keras.applications`, registered by name, with its
`"imagenet"` weights (which keras.applications downloads on first use) and
its ImageNet classifier. Keras is imported by the builders: registering
the names costs none."""

from keras_tl.backbones.registry import register_backbone
from keras_tl.backbones.spec import BackboneSpec, PretrainedWeights, Preprocessing

# name: (keras.applications attribute, input size, preprocessing mode, min size)
_TABLE = {
    "vgg16": ("VGG16", 224, "caffe", 32),
    "vgg19": ("VGG19", 224, "caffe", 32),
    "resnet50": ("ResNet50", 224, "caffe", 32),
    "resnet101": ("ResNet101", 224, "caffe", 32),
    "resnet152": ("ResNet152", 224, "caffe", 32),
    "resnet50_v2": ("ResNet50V2", 224, "tf", 32),
    "resnet101_v2": ("ResNet101V2", 224, "tf", 32),
    "resnet152_v2": ("ResNet152V2", 224, "tf", 32),
    "xception": ("Xception", 299, "tf", 71),
    "inception_v3": ("InceptionV3", 299, "tf", 75),
    "inception_resnet_v2": ("InceptionResNetV2", 299, "tf", 75),
    "mobilenet": ("MobileNet", 224, "tf", 32),
    "mobilenet_v2": ("MobileNetV2", 224, "tf", 32),
    "mobilenet_v3_small": ("MobileNetV3Small", 224, "none", 32),
    "mobilenet_v3_large": ("MobileNetV3Large", 224, "none", 32),
    "densenet121": ("DenseNet121", 224, "torch", 32),
    "densenet169": ("DenseNet169", 224, "torch", 32),
    "densenet201": ("DenseNet201", 224, "torch", 32),
    "nasnet_mobile": ("NASNetMobile", 224, "tf", 32),
    "nasnet_large": ("NASNetLarge", 331, "tf", 32),
    "efficientnet_b0": ("EfficientNetB0", 224, "none", 32),
    "efficientnet_b1": ("EfficientNetB1", 240, "none", 32),
    "efficientnet_b2": ("EfficientNetB2", 260, "none", 32),
    "efficientnet_b3": ("EfficientNetB3", 300, "none", 32),
    "efficientnet_b4": ("EfficientNetB4", 380, "none", 32),
    "efficientnet_b5": ("EfficientNetB5", 456, "none", 32),
    "efficientnet_b6": ("EfficientNetB6", 528, "none", 32),
    "efficientnet_b7": ("EfficientNetB7", 600, "none", 32),
    "efficientnet_v2_b0": ("EfficientNetV2B0", 224, "none", 32),
    "efficientnet_v2_b1": ("EfficientNetV2B1", 240, "none", 32),
    "efficientnet_v2_b2": ("EfficientNetV2B2", 260, "none", 32),
    "efficientnet_v2_b3": ("EfficientNetV2B3", 300, "none", 32),
    "efficientnet_v2_s": ("EfficientNetV2S", 384, "none", 32),
    "efficientnet_v2_m": ("EfficientNetV2M", 480, "none", 32),
    "efficientnet_v2_l": ("EfficientNetV2L", 480, "none", 32),
    "convnext_tiny": ("ConvNeXtTiny", 224, "none", 32),
    "convnext_small": ("ConvNeXtSmall", 224, "none", 32),
    "convnext_base": ("ConvNeXtBase", 224, "none", 32),
    "convnext_large": ("ConvNeXtLarge", 224, "none", 32),
    "convnext_xlarge": ("ConvNeXtXLarge", 224, "none", 32),
}


def _builder(attribute):
    def build(weights, input_shape):
        import keras

        constructor = getattr(keras.applications, attribute)
        return constructor(include_top=False, weights=weights, input_shape=input_shape)

    return build


def _classifier(name, attribute, preprocessing):
    def build_classifier(weights="imagenet", input_shape=None, classifier_activation="softmax"):
        import keras

        constructor = getattr(keras.applications, attribute)
        body = constructor(include_top=True, weights=weights, input_shape=input_shape,
                           classifier_activation=classifier_activation)
        inputs = keras.Input(input_shape or body.input_shape[1:])
        return keras.Model(inputs, body(preprocessing.layer()(inputs)), name=f"{name}_imagenet")

    return build_classifier


for _name, (_attr, _size, _mode, _min) in _TABLE.items():
    _preprocessing = Preprocessing.from_mode(_mode)
    register_backbone(
        BackboneSpec(
            name=_name,
            build=_builder(_attr),
            input_size=(_size, _size),
            preprocessing=_preprocessing,
            min_input_size=_min,
            fixed_input_size=_name.startswith("nasnet"),
            source=f"keras.applications.{_attr}",
            aliases=(_attr,),
            pretrained=[PretrainedWeights("imagenet", "keras.applications",
                                          f"keras.applications.{_attr}")],
            classifier=_classifier(_name, _attr, _preprocessing),
        )
    )
