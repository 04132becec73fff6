"""Task models beyond classification: a RetinaNet detector on keras_tl backbones.

Import `keras_tl.models.retinanet` (it imports keras_hub).
"""
