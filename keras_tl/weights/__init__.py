"""Pretrained weights from other frameworks: safe PyTorch state-dict reading,
porting onto Keras layers, and decoding of ImageNet classes.

A leaf package: nothing here imports `keras_tl.backbones` (which uses it).
The ImageNet classifiers are `keras_tl.imagenet_classifier`
(`keras_tl.backbones.classifiers`).
"""

from keras_tl.errors import ChecksumError, UnsafeCheckpointError
from keras_tl.weights.imagenet import decode_imagenet, imagenet_classes
from keras_tl.weights.porting import plan_port, port_state_dict
from keras_tl.weights.torch_state_dict import check_sha256, load_torch_state_dict, sha256_file

__all__ = [
    "ChecksumError",
    "UnsafeCheckpointError",
    "check_sha256",
    "decode_imagenet",
    "imagenet_classes",
    "load_torch_state_dict",
    "plan_port",
    "port_state_dict",
    "sha256_file",
]
