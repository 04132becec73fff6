"""RetinaNet on a keras_tl backbone: keras_hub's detector (anchors, focal
loss, box regression, NMS) fed by any keras_tl image backbone.

keras_hub's `RetinaNetObjectDetector` wants a `RetinaNetBackbone`, which
wants an image encoder with `pyramid_outputs` (`{"P3": stride-8 features,
"P4": stride 16, "P5": stride 32}`). `PyramidImageEncoder` is that encoder
for a keras_tl backbone: the backbone's preprocessing layer then its own
layers, re-applied flat (not nested) so that keras_hub's feature extractor,
the layer named `"backbone"` inside `detector.backbone`, holds exactly the
pretrained layers (plus the weightless preprocessing):

    detector = build_detector(load_backbone("mobilenet_v2_torch"), num_classes=4)
    detector_backbone(detector).trainable = False   # the frozen-backbone stage
    # == detector.backbone.get_layer("backbone")

The model takes float32 RGB pixels in [0, 255] (`[batch, H, W, 3]`), trains
with `fit` on `(images, {"boxes": [batch, n, 4], "labels": [batch, n]})`
(pixel `xmin, ymin, xmax, ymax`, padding -1, as `make_detection_dataset`
gives), and `predict` returns NMS-ed `{"boxes", "confidence", "labels",
"num_detections"}`, boxes in pixels of the input (clipped to it), padding -1.
"""

import math

import keras
import numpy as np
from keras import ops
from keras_hub.layers import AnchorGenerator, NonMaxSuppression
from keras_hub.models import FeaturePyramidBackbone, RetinaNetBackbone, RetinaNetObjectDetector

from keras_tl import _compat
from keras_tl.errors import BackboneError, ConfigError

BOX_FORMAT = "xyxy"
PYRAMID_STRIDES = {"P3": 8, "P4": 16, "P5": 32}
FEATURE_EXTRACTOR = "backbone"  # keras_hub's name for it inside RetinaNetBackbone
_NOT_FEATURES = (keras.layers.InputLayer, keras.layers.ZeroPadding2D)
# What `choose_anchors` tries, in order of preference: RetinaNet's own
# anchors first, then smaller ones, then extra shapes for thin objects.
ANCHOR_SIZES = (4.0, 2.0, 1.0)
ASPECT_RATIO_SETS = ((0.5, 1.0, 2.0), (0.5, 1.0, 2.0, 4.0), (0.25, 0.5, 1.0, 2.0),
                     (0.25, 0.5, 1.0, 2.0, 4.0))


def pyramid_layer_names(model, strides=PYRAMID_STRIDES):
    """For each pyramid level, the last layer of `model` whose output is the
    input downsampled by exactly that stride.

    Padding layers are skipped (their outputs are a few pixels larger); the
    model needs a fixed input size divisible by the largest stride.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> pyramid_layer_names(loaded.model)
    {'P3': 'block_6_expand_relu', 'P4': 'block_13_expand_relu', 'P5': 'out_relu'}
    """
    height, width = model.input_shape[1:3]
    found = {}
    for layer in model.layers:
        if isinstance(layer, _NOT_FEATURES) or not isinstance(getattr(layer, "output", None),
                                                              keras.KerasTensor):
            continue
        shape = layer.output.shape
        if len(shape) != 4 or not shape[1] or not shape[2]:
            continue
        if height % shape[1] or width % shape[2] or height // shape[1] != width // shape[2]:
            continue
        for level, stride in strides.items():
            if height // shape[1] == stride:
                found[level] = layer.name
    missing = [f"{level} (stride {strides[level]})" for level in strides if level not in found]
    if missing:
        raise BackboneError(
            f"Backbone {model.name!r} at {height}x{width} has no feature map for {', '.join(missing)}; "
            "a detector needs a convolutional backbone and an image size divisible by 32."
        )
    return {level: found[level] for level in strides}


@keras.saving.register_keras_serializable(package="keras_tl")
class PyramidImageEncoder(FeaturePyramidBackbone):
    """A keras_hub `FeaturePyramidBackbone` made of a keras_tl backbone.

    Raw RGB 0-255 pixels go through the preprocessing layer, then the
    backbone's layers; `pyramid_outputs` are its stride 8/16/32 features.

    Args:
        feature_model: a functional model from raw pixels to a dict
            `{"P3": ..., "P4": ..., "P5": ...}`; `from_backbone` builds it.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> encoder = PyramidImageEncoder.from_backbone(loaded)
    >>> {level: tuple(t.shape) for level, t in encoder.pyramid_outputs.items()}
    {'P3': (None, 8, 8, 192), 'P4': (None, 4, 4, 576), 'P5': (None, 2, 2, 1280)}
    """

    def __init__(self, feature_model, **kwargs):
        # A functional model on the same tensors: the layers stay flat.
        super().__init__(inputs=feature_model.inputs, outputs=feature_model.outputs, **kwargs)
        self.pyramid_outputs = dict(zip(sorted(PYRAMID_STRIDES), self.outputs))

    @classmethod
    def from_backbone(cls, loaded, name="pyramid_image_encoder"):
        """Builds the encoder of a `LoadedBackbone` (its layers and weights
        shared, not copied).

        Example:
        >>> import keras_tl
        >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
        >>> encoder = PyramidImageEncoder.from_backbone(loaded)
        >>> encoder.get_layer("Conv1") is loaded.model.get_layer("Conv1")
        True
        """
        model = loaded.model
        names = pyramid_layer_names(model)
        height, width = loaded.input_size
        images = keras.Input((height, width, 3), name="images", dtype="float32")
        pixels = loaded.spec.preprocessing.layer()(images)
        # Re-apply the backbone's own layers to the preprocessed pixels,
        # keeping the outputs of the pyramid layers.
        captured = {}

        def keep_outputs(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            captured[layer.name] = outputs
            return outputs

        keras.models.clone_model(model, input_tensors=pixels, clone_function=lambda layer: layer,
                                 call_function=keep_outputs)
        outputs = {level: captured[names[level]] for level in sorted(names)}
        return cls(keras.Model(images, outputs), name=name)

    def get_config(self):
        config = super().get_config()
        config["feature_model"] = keras.layers.serialize(keras.Model(self.inputs, self.outputs))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["feature_model"] = keras.layers.deserialize(config["feature_model"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_tl")
class ClippedNonMaxSuppression(NonMaxSuppression):
    """keras_hub's `NonMaxSuppression` on `xyxy` boxes first clipped to the
    image: keras_hub decodes boxes reaching past the edges, which would
    then come out of `predict` (and overlap less in NMS). A box wholly
    outside the image is dropped. Under TensorFlow it selects with
    TensorFlow's own greedy NMS (keras_hub 0.32's skips candidates in a
    graph); elsewhere it works around keras_hub's NMS needing a static batch
    size (the NMS then runs image by image).

    Example:
    >>> import numpy as np
    >>> nms = ClippedNonMaxSuppression(bounding_box_format="xyxy", from_logits=False,
    ...                                confidence_threshold=0.5, max_detections=2)
    >>> boxes = np.array([[[-5., 2., 20., 40.], [40., 0., 50., 9.]]])  # the second is outside
    >>> out = nms(boxes, np.array([[[0.9], [0.8]]]), images=np.zeros((1, 32, 32, 3)))
    >>> np.asarray(out["boxes"])[0, 0].tolist(), int(out["num_detections"][0])
    ([0.0, 2.0, 20.0, 32.0], 1)
    """

    def __init__(self, bounding_box_format=BOX_FORMAT, **kwargs):
        if bounding_box_format != BOX_FORMAT:
            raise ConfigError(
                f"ClippedNonMaxSuppression takes {BOX_FORMAT!r} boxes, not {bounding_box_format!r}.")
        super().__init__(bounding_box_format=bounding_box_format, **kwargs)

    def call(self, box_prediction, class_prediction, images=None):
        if images is not None:
            box_prediction, inside = _clip_to_image(
                box_prediction, ops.shape(images)[1], ops.shape(images)[2])
            lowest = -1e9 if self.from_logits else 0.0
            class_prediction = ops.where(inside[..., None], class_prediction,
                                         ops.cast(lowest, class_prediction.dtype))
        if keras.backend.backend() == "tensorflow":
            return self._greedy_tensorflow(box_prediction, class_prediction)
        if box_prediction.shape[0] is not None:
            return super().call(box_prediction, class_prediction, images=images)

        # no static batch size (TensorFlow's predict, partial last batch)
        def one_image(inputs):
            boxes, scores = inputs
            found = NonMaxSuppression.call(self, boxes[None], scores[None])
            return {key: value[0] for key, value in found.items()}

        return ops.map(one_image, (box_prediction, class_prediction))

    def _greedy_tensorflow(self, boxes, scores):
        """keras_hub's selection (each anchor's best class, suppressed
        across classes) by TensorFlow's greedy NMS kernel: keras_hub 0.32's
        tiled NMS, constant-folded in a TensorFlow graph, gathers through a
        float `linspace` cast to int and skips candidates 66, 70, 74...
        whenever more than 65 pass the threshold (the SavedModel, `predict`
        and `evaluate` all run in a graph)."""
        import tensorflow as tf

        if self.from_logits:
            scores = tf.sigmoid(scores)
        confidence = tf.reduce_max(scores, axis=-1)
        labels = tf.argmax(scores, axis=-1, output_type=tf.int32)
        most = self.max_detections

        def one_image(inputs):
            image_boxes, image_confidence, image_labels = inputs
            keep = tf.image.non_max_suppression(
                image_boxes, image_confidence, most, iou_threshold=self.iou_threshold,
                score_threshold=self.confidence_threshold)
            count = tf.shape(keep)[0]
            padding = most - count
            return (
                tf.pad(tf.gather(image_boxes, keep), [[0, padding], [0, 0]], constant_values=-1),
                tf.pad(tf.gather(image_confidence, keep), [[0, padding]], constant_values=-1),
                tf.pad(tf.gather(image_labels, keep), [[0, padding]], constant_values=-1),
                count,
            )

        found = tf.map_fn(one_image, (boxes, confidence, labels), fn_output_signature=(
            tf.TensorSpec([most, 4], boxes.dtype), tf.TensorSpec([most], confidence.dtype),
            tf.TensorSpec([most], labels.dtype), tf.TensorSpec([], tf.int32)))
        return dict(zip(("boxes", "confidence", "labels", "num_detections"), found))


def _clip_to_image(boxes, height, width):
    """`xyxy` boxes clipped to the image, and whether each is still
    non-empty (a box wholly outside is empty now: never a detection)."""
    limit = ops.cast(ops.stack([width, height, width, height]), boxes.dtype)
    boxes = ops.minimum(ops.maximum(boxes, 0.0), limit)
    inside = ops.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])
    return boxes, inside


def _anchor_array(generator, image_size):
    """Every anchor of `generator` for `image_size` images, `[n, 4]` NumPy,
    levels in order."""
    levels = generator(np.zeros((1,) + tuple(image_size) + (3,), "float32"))
    return np.concatenate([ops.convert_to_numpy(v) for v in levels.values()], axis=0)


def _valid_boxes(boxes):
    """`boxes` as `[n, 4]` float64 without the padding and empty rows."""
    boxes = np.asarray(boxes, "float64").reshape(-1, 4)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def anchor_recall(boxes, image_size, anchor_size, aspect_ratios, threshold=0.5):
    """The fraction of `boxes` (`[n, 4]` pixel `xmin, ymin, xmax, ymax`;
    rows of -1 are padding) that some anchor overlaps with IoU >=
    `threshold`: the boxes a RetinaNet with these anchors can learn to find.

    Example:
    >>> boxes = np.array([[0., 0., 32., 32.], [10., 10., 16., 60.]])
    >>> anchor_recall(boxes, (64, 64), 4.0, (0.5, 1.0, 2.0))
    0.5

    On the shipped detection demo at 128 px (rockets about 7:1), 4:1
    anchors fit many more of the training boxes:

    >>> from keras_tl.data.detection import load_detection_arrays, load_detection_data
    >>> from keras_tl.datasets.detection_demo import detection_demo_path
    >>> records = load_detection_data(detection_demo_path("train")).records
    >>> _, demo_boxes, _ = load_detection_arrays(records, (128, 128))
    >>> [round(anchor_recall(demo_boxes, (128, 128), 2.0, ratios), 3)
    ...  for ratios in [(0.5, 1.0, 2.0), (0.5, 1.0, 2.0, 4.0)]]
    [0.735, 0.911]
    """
    boxes = _valid_boxes(boxes)
    if not len(boxes):
        return 1.0
    generator = AnchorGenerator(BOX_FORMAT, min_level=3, max_level=7, num_scales=3,
                                aspect_ratios=list(aspect_ratios), anchor_size=anchor_size)
    anchors = _anchor_array(generator, image_size).astype("float64")
    anchor_area = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    found = 0
    for part in np.array_split(boxes, max(1, len(boxes) // 256)):
        left = np.maximum(part[:, None, 0], anchors[None, :, 0])
        top = np.maximum(part[:, None, 1], anchors[None, :, 1])
        right = np.minimum(part[:, None, 2], anchors[None, :, 2])
        bottom = np.minimum(part[:, None, 3], anchors[None, :, 3])
        inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
        area = (part[:, 2] - part[:, 0]) * (part[:, 3] - part[:, 1])
        iou = inter / (area[:, None] + anchor_area[None, :] - inter)
        found += int((iou.max(axis=1) >= threshold).sum())
    return found / len(boxes)


def choose_anchors(boxes, image_size, tolerance=0.01, max_boxes=2000, seed=0,
                   anchor_sizes=ANCHOR_SIZES, aspect_ratio_sets=ASPECT_RATIO_SETS):
    """Anchor size and aspect ratios for the training `boxes` (pixel `xyxy`
    at `image_size`; rows of -1 are padding), like YOLOv5's autoanchor: the
    first of RetinaNet's anchors (size 4, ratios 1/2, 1, 2), smaller ones
    (2, 1) and extra ratios (4:1, 1:4) whose `anchor_recall` is within
    `tolerance` of the best (among `anchor_sizes` x `aspect_ratio_sets`,
    in that order of preference). Returns `{"anchor_size",
    "aspect_ratios", "anchor_recall"}`.

    Example:
    >>> rockets = np.array([[20., 10., 28., 70.], [60., 30., 67., 90.]])  # about 8:1
    >>> choose_anchors(rockets, (128, 128))
    {'anchor_size': 2.0, 'aspect_ratios': [0.5, 1.0, 2.0, 4.0], 'anchor_recall': 1.0}
    """
    boxes = _valid_boxes(boxes)
    if len(boxes) > max_boxes:
        boxes = boxes[np.random.default_rng(seed).choice(len(boxes), max_boxes, replace=False)]
    candidates = [(float(size), tuple(ratios)) for ratios in aspect_ratio_sets
                  for size in anchor_sizes]
    recalls = [anchor_recall(boxes, image_size, size, ratios) for size, ratios in candidates]
    best = max(recalls)
    index = next(i for i, recall in enumerate(recalls) if recall >= best - tolerance)
    size, ratios = candidates[index]
    return dict(anchor_size=size, aspect_ratios=list(ratios), anchor_recall=round(recalls[index], 4))


@keras.saving.register_keras_serializable(package="keras_tl")
class MatchingLabelEncoder(_compat.retinanet_label_encoder_class()):
    """keras_hub's `RetinaNetLabelEncoder` (IoU >= 0.5 positive, < 0.4
    background, between ignored) plus low-quality matches: each
    ground-truth box also keeps its highest-IoU anchor(s), ties included,
    as positives, as Detectron2's and torchvision's RetinaNet
    (`allow_low_quality_matches=True`) do, so that a box no anchor overlaps
    at 0.5 still trains one. Such an anchor gets that box's class and box
    deltas, unless it already is a positive of another box (which keeps
    it; Detectron2 and torchvision would give it the box it overlaps most,
    which may leave the box unmatched). Padding boxes (class < 0, or no
    overlap with any anchor) match nothing. Built from `keras.ops` (no
    `target_gather`, whose force-match path keras_hub's own option takes),
    so it runs in the training step on any backend.

    Args:
        anchor_generator, bounding_box_format, **kwargs: as keras_hub's.
        low_quality_matches: add the low-quality matches (default);
            `False` encodes as keras_hub does.

    Example:
    >>> generator = AnchorGenerator(BOX_FORMAT, min_level=3, max_level=7, num_scales=3,
    ...                             aspect_ratios=[1.0], anchor_size=4)
    >>> encoder = MatchingLabelEncoder(generator, BOX_FORMAT, encoding_format="center_xywh")
    >>> thin = np.array([[[10., 10., 14., 60.], [-1., -1., -1., -1.]]], "float32")
    >>> boxes, classes = encoder(np.zeros((1, 64, 64, 3), "float32"), thin,
    ...                          np.array([[3, -1]], "float32"))
    >>> int((np.asarray(classes) == 3).sum())  # its 8 tied best anchors; keras_hub's: none
    8
    """

    def __init__(self, anchor_generator, bounding_box_format, low_quality_matches=True, **kwargs):
        super().__init__(anchor_generator, bounding_box_format, **kwargs)
        self.low_quality_matches = bool(low_quality_matches)

    def _encode_sample(self, gt_boxes, gt_classes, anchor_boxes, height, width, channels):
        # one padding row more: never empty, and the gathers below never need target_gather
        batch = ops.shape(gt_boxes)[0]
        gt_boxes = ops.concatenate(
            [gt_boxes, -ops.ones((batch, 1, 4), gt_boxes.dtype)], axis=1)
        gt_classes = ops.concatenate(
            [ops.cast(gt_classes, gt_boxes.dtype), -ops.ones((batch, 1, 1), gt_boxes.dtype)],
            axis=1)[..., 0]
        anchor_boxes = keras.utils.bounding_boxes.convert_format(
            anchor_boxes, source=self.anchor_generator.bounding_box_format,
            target=self.bounding_box_format, height=height, width=width)
        iou = keras.utils.bounding_boxes.compute_iou(  # [batch, anchors, boxes]
            anchor_boxes, gt_boxes, bounding_box_format=self.bounding_box_format,
            image_shape=(height, width, channels))
        matched, values = self.box_matcher(iou)
        positive = ops.equal(values, 1)
        if self.low_quality_matches:
            matched, positive = low_quality_matches(iou, gt_classes >= 0, matched, positive)
        ignored = ops.logical_and(ops.equal(values, -2), ops.logical_not(positive))
        index = ops.expand_dims(ops.cast(matched, "int32"), axis=-1)
        matched_boxes = ops.take_along_axis(
            gt_boxes, ops.repeat(index, 4, axis=-1), axis=1)
        matched_classes = ops.take_along_axis(gt_classes, matched, axis=1)
        box_targets = keras.utils.bounding_boxes.encode_box_to_deltas(
            anchors=anchor_boxes, boxes=matched_boxes, anchor_format=self.bounding_box_format,
            box_format=self.bounding_box_format, encoding_format=self.encoding_format,
            variance=self.box_variance, image_shape=(height, width, channels))
        # only positives' deltas carry weight; the others (an anchor's
        # nearest box may be padding) are 0, never inf
        box_targets = ops.where(ops.expand_dims(positive, -1), box_targets, 0.0)
        class_targets = ops.where(positive, matched_classes,
                                  ops.where(ignored, self.ignore_class, self.background_class))
        class_targets = ops.cast(class_targets, box_targets.dtype)
        # keras_hub's guard: a positive whose deltas are not finite is ignored
        broken = ops.logical_not(ops.all(ops.isfinite(box_targets), axis=-1))
        class_targets = ops.where(broken, self.ignore_class, class_targets)
        box_targets = ops.where(ops.expand_dims(broken, -1), 0.0, box_targets)
        return box_targets, class_targets

    def get_config(self):
        config = super().get_config()
        config.update(low_quality_matches=self.low_quality_matches)
        return config


def low_quality_matches(iou, valid, matched, positive):
    """Adds Detectron2's low-quality matches to an anchor matching: for
    each valid box, the anchors whose IoU with it is its highest (ties
    included, above 0) become positives of that box (of the one they
    overlap most if they are the best of several), unless already
    positive. `iou` `[batch, anchors, boxes]`, `valid` `[batch, boxes]`
    bool, `matched` `[batch, anchors]` box index, `positive` `[batch,
    anchors]` bool; returns the new `matched` (int32) and `positive`.

    Example:
    >>> iou = np.array([[[0.3, 0.0], [0.2, 0.6], [0.3, 0.1]]], "float32")
    >>> matched, positive = low_quality_matches(
    ...     iou, np.array([[True, True]]), np.array([[0, 1, 0]]),
    ...     np.array([[False, True, False]]))
    >>> np.asarray(matched).tolist(), np.asarray(positive).tolist()
    ([[0, 1, 0]], [[True, True, True]])
    """
    iou = ops.convert_to_tensor(iou)
    best = ops.max(iou, axis=1, keepdims=True)
    is_best = ops.logical_and(ops.equal(iou, best), ops.greater(best, 0.0))
    is_best = ops.logical_and(is_best, ops.expand_dims(ops.convert_to_tensor(valid), 1))
    best_box = ops.cast(ops.argmax(ops.where(is_best, iou, -1.0), axis=-1), "int32")
    positive = ops.convert_to_tensor(positive)
    new = ops.logical_and(ops.any(is_best, axis=-1), ops.logical_not(positive))
    matched = ops.where(new, best_box, ops.cast(matched, "int32"))
    return matched, ops.logical_or(positive, new)


def build_detector(loaded_backbone, num_classes, image_size=None, *, min_level=3, max_level=7,
                   anchor_size=4.0, aspect_ratios=(0.5, 1.0, 2.0), head_conv_layers=4,
                   head_group_norm=False, fpn_batch_norm=False,
                   confidence_threshold=0.05, iou_threshold=0.5, max_detections=100,
                   low_quality_matches=True, name="retinanet"):
    """A keras_hub `RetinaNetObjectDetector` on a keras_tl backbone.

    Args:
        loaded_backbone: a `keras_tl.backbones.LoadedBackbone` (from
            `keras_tl.load_backbone(name, image_size=...)`), built at the
            detector's image size.
        num_classes: number of object classes (no background class).
        image_size: `(height, width)` or an int, divisible by 32; defaults
            to the backbone's input size (which must then match).
        min_level, max_level: the pyramid levels with anchors (3..7 as in
            RetinaNet: strides 8 to 128; P6 and P7 come from P5).
        anchor_size: anchors at level `l` are `anchor_size * 2**l` pixels
            (3 scales, aspect ratios 1/2, 1, 2): with 4, 32 px at P3. Lower
            it for small objects in small images (2 -> 16 px).
        aspect_ratios: anchor shapes, height / width; add e.g. 4.0 for
            tall thin objects (a box matches an anchor at IoU 0.5 or more,
            which a 7:1 object never reaches with 2:1 anchors).
        head_conv_layers: convolutions (256 filters) in each head before
            its output layer.
        head_group_norm: GroupNormalization after each head convolution.
        fpn_batch_norm: BatchNormalization in the feature pyramid.
        confidence_threshold, iou_threshold, max_detections: the NMS of
            `predict`.
        low_quality_matches: each training box also keeps its best
            anchor(s) as positives when none reaches IoU 0.5, as
            Detectron2's and torchvision's RetinaNet do (`MatchingLabelEncoder`);
            `False` trains on keras_hub's matching alone.

    Returns:
        The detector, compiled with keras_hub's defaults (recompile it with
        `detector.compile(optimizer=..., box_loss=..., classification_loss=...)`;
        keras_hub's `ObjectDetector.compile` refuses `metrics`).

    Example:
    >>> import keras_tl, numpy as np
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> out = detector.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    >>> out["boxes"].shape, out["labels"].shape, detector_backbone(detector).name
    ((1, 100, 4), (1, 100), 'backbone')
    """
    if num_classes < 1:
        raise ConfigError(f"A detector needs at least one class, got num_classes={num_classes}.")
    size = tuple(loaded_backbone.input_size)
    if image_size is not None:
        wanted = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if wanted != size:
            raise ConfigError(
                f"The backbone was built for {size} images, not {wanted}; load it with "
                f"keras_tl.load_backbone(..., image_size={wanted})."
            )
    if size[0] % 32 or size[1] % 32:
        raise ConfigError(f"A detector's image size must be divisible by 32, got {size}.")
    if not 3 <= min_level <= 5 or max_level < 5:
        raise ConfigError(
            f"Pyramid levels {min_level}..{max_level}: min_level must be 3, 4 or 5 (the backbone "
            "gives P3-P5) and max_level at least 5."
        )
    encoder = PyramidImageEncoder.from_backbone(loaded_backbone)
    backbone = RetinaNetBackbone(
        image_encoder=encoder, min_level=min_level, max_level=max_level, use_p5=False,
        use_fpn_batch_norm=fpn_batch_norm, image_shape=size + (3,), name="retinanet_backbone")
    anchors = AnchorGenerator(BOX_FORMAT, min_level=min_level, max_level=max_level, num_scales=3,
                              aspect_ratios=[float(r) for r in aspect_ratios], anchor_size=anchor_size)
    decoder = ClippedNonMaxSuppression(from_logits=True,
                                iou_threshold=iou_threshold, confidence_threshold=confidence_threshold,
                                max_detections=max_detections)
    detector = RetinaNetObjectDetector(
        backbone=backbone, num_classes=num_classes, bounding_box_format=BOX_FORMAT,
        anchor_generator=anchors, prediction_decoder=decoder,
        label_encoder=MatchingLabelEncoder(anchors, BOX_FORMAT, encoding_format="center_xywh",
                                           low_quality_matches=low_quality_matches),
        pre_logits_num_conv_layers=head_conv_layers, use_prediction_head_norm=head_group_norm,
        name=name)
    _initialise_heads(detector)
    return detector


def _initialise_heads(detector, prior_probability=0.01):
    """The heads' initialisation of the RetinaNet paper (Lin et al. 2017,
    4.1): kernels N(0, 0.01), biases 0, except the classification output's
    bias -log((1 - 0.01) / 0.01), so that every anchor starts at 1 %
    confidence.

    keras_hub 0.32 draws the kernels with std 0.05 and gives the prior bias
    to the box head instead: untrained, anchors then score about 0.1-0.5
    (a huge focal loss from the background) and box deltas reach +-13, which
    kept a detector on the demo set near mAP 0 for hundreds of steps. Its
    pretrained presets load their own weights, so only heads trained from
    scratch, as here, meet this.
    """
    prior = -math.log((1 - prior_probability) / prior_probability)
    for head in (detector.classification_head, detector.box_head):
        for conv in list(head.conv_layers) + [head.prediction_layer]:
            conv.kernel.assign(keras.random.normal(tuple(conv.kernel.shape), stddev=0.01))
            if conv.use_bias:
                is_logits = head is detector.classification_head and conv is head.prediction_layer
                conv.bias.assign(np.full(tuple(conv.bias.shape), prior if is_logits else 0.0, "float32"))


@keras.saving.register_keras_serializable(package="keras_tl")
class DecodedDetections(keras.layers.Layer):
    """A RetinaNet's raw head outputs to its pre-NMS detections, as
    `RetinaNetObjectDetector.decode_predictions` and
    `ClippedNonMaxSuppression` compute them before NMS: the box deltas
    (`center_xywh`-encoded against the anchors of `anchor_generator`)
    decoded to `xmin, ymin, xmax, ymax` pixels and clipped to the image, and
    the class logits as sigmoid scores, 0 for an anchor whose clipped box is
    empty (it lay wholly outside the image).

    Args:
        anchor_generator: the detector's `AnchorGenerator` config (dict).
        image_size: `(height, width)` of the detector's input.

    Example:
    >>> generator = AnchorGenerator(BOX_FORMAT, min_level=3, max_level=7, num_scales=3,
    ...                             aspect_ratios=[1.0], anchor_size=4)
    >>> layer = DecodedDetections(generator.get_config(), (64, 64))
    >>> n = layer.anchors.shape[0]
    >>> boxes, scores = layer(np.zeros((1, n, 4), "float32"), np.zeros((1, n, 2), "float32"))
    >>> np.asarray(boxes)[0, 0].tolist(), np.asarray(scores)[0, 0].tolist(), n
    ([0.0, 0.0, 16.0, 16.0], [0.5, 0.5], 258)
    """

    def __init__(self, anchor_generator, image_size, **kwargs):
        super().__init__(**kwargs)
        self.anchor_generator = dict(anchor_generator)
        self.image_size = tuple(int(v) for v in image_size)
        generator = AnchorGenerator.from_config(self.anchor_generator)
        self.anchors = _anchor_array(generator, self.image_size).astype("float32")
        self.anchor_format = generator.bounding_box_format

    def call(self, box_deltas, class_logits):
        height, width = self.image_size
        boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
            anchors=ops.convert_to_tensor(self.anchors, box_deltas.dtype),
            boxes_delta=box_deltas, anchor_format=self.anchor_format, box_format=BOX_FORMAT,
            encoded_format="center_xywh", image_shape=(height, width, 3))
        boxes, inside = _clip_to_image(boxes, height, width)
        scores = ops.sigmoid(class_logits)
        scores = ops.where(inside[..., None], scores, ops.zeros_like(scores))
        return boxes, scores

    def compute_output_shape(self, box_deltas_shape, class_logits_shape):
        return tuple(box_deltas_shape), tuple(class_logits_shape)

    def get_config(self):
        config = super().get_config()
        config.update(anchor_generator=self.anchor_generator, image_size=list(self.image_size))
        return config


def raw_detection_model(detector, name="retinanet_detections"):
    """A Keras model of `detector`'s pre-NMS detections: what ONNX and
    LiteRT exports run before their NMS (their converters cannot carry
    keras_hub's NMS loop; `keras_tl.tasks.object_detector.detections_function`
    adds an NMS they carry), and what they hold alone in a `raw_anchors`
    export.

    It takes what the detector takes, `images` float32 `[batch, H, W, 3]`
    (RGB 0-255 at the detector's size), and returns `{"boxes": [batch,
    num_anchors, 4], "scores": [batch, num_anchors, num_classes]}`: every
    anchor's decoded box (`xmin, ymin, xmax, ymax` in pixels of the input,
    clipped to it) and its sigmoid class scores (0 for a box wholly outside
    the image), the inputs of the detector's NMS. It shares the detector's
    layers and weights. NMS as `predict` applies it (one box per anchor,
    its best class; greedy over all classes at once) is
    `keras_tl.tasks.object_detector.non_max_suppression`.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> raw = raw_detection_model(detector)
    >>> out = raw.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    >>> out["boxes"].shape, out["scores"].shape
    ((1, 774, 4), (1, 774, 2))
    """
    try:
        outputs = detector.output
        deltas, logits = outputs["bbox_regression"], outputs["cls_logits"]
        generator = detector.anchor_generator
    except (AttributeError, KeyError, TypeError):
        raise ConfigError(
            f"Model {getattr(detector, 'name', detector)!r} is not a keras_hub RetinaNet "
            "detector (no bbox_regression and cls_logits outputs); build it with "
            "keras_tl.models.retinanet.build_detector."
        ) from None
    height, width = detector.input_shape[1:3]
    boxes, scores = DecodedDetections(generator.get_config(), (height, width),
                                      name="decoded_detections")(deltas, logits)
    return keras.Model(detector.input, {"boxes": boxes, "scores": scores}, name=name)


def detector_backbone(detector):
    """The pretrained part of a detector built by `build_detector`: set its
    `trainable` to freeze or unfreeze the backbone (then recompile).

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> part = detector_backbone(detector)
    >>> part.get_layer("Conv1") is loaded.model.get_layer("Conv1")
    True
    """
    try:
        return detector.backbone.get_layer(FEATURE_EXTRACTOR)
    except (AttributeError, ValueError):
        raise ConfigError(
            f"Model {getattr(detector, 'name', detector)!r} is not a detector from build_detector "
            f"(no {FEATURE_EXTRACTOR!r} layer in its RetinaNet backbone)."
        ) from None


def split_detector(detector):
    """`(feature_model, head_model)` for training a detector whose
    pretrained feature extractor (`detector_backbone`) is frozen on features
    computed once: the feature model maps images to the extractor's P3-P5
    maps, flattened and concatenated into one vector per image (what
    `keras_tl.training.cache` stores); the head model (a
    `CachedRetinaNetHead`, sharing the detector's feature pyramid and box
    and class heads) maps that vector to the detector's raw outputs and
    trains on `encode_targets`' anchor targets. `None` while the extractor
    has trainable weights.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> detector_backbone(detector).trainable = False
    >>> features, head = split_detector(detector)
    >>> x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    >>> cached, full = head(features(x))["cls_logits"], detector(x)["cls_logits"]
    >>> features.output.shape, bool(np.allclose(cached, full, atol=1e-5))
    ((None, 26624), True)
    """
    extractor = detector_backbone(detector)
    if extractor.trainable_weights:
        return None
    levels = sorted(extractor.output, key=lambda level: int(level[1:]))
    shapes = {level: tuple(extractor.output[level].shape[1:]) for level in levels}
    images = keras.Input(detector.input_shape[1:], name="images")
    maps = extractor(images)
    flat = keras.layers.Concatenate(name="pyramid_features")(
        [keras.layers.Flatten(name=f"flat_{level}")(maps[level]) for level in levels])
    feature_model = keras.Model(images, flat, name="cached_pyramid")
    head = CachedRetinaNetHead(detector, shapes)
    head_ids = {id(w) for w in head.weights}
    if any(id(w) not in head_ids for w in detector.trainable_weights):
        return None  # something else trains: it would stay untrained
    return feature_model, head


class CachedRetinaNetHead(keras.Model):
    """The trainable part of a RetinaNet on a frozen feature extractor:
    its flattened P3-P5 maps in (`split_detector`' feature model), through
    the detector's own feature pyramid and heads (shared, so what trains
    here trains the detector), out the detector's raw `bbox_regression` and
    `cls_logits`. It trains on anchor targets encoded once
    (`encode_targets`: `[batch, anchors, 5]`, box deltas then class) with
    keras_hub's RetinaNet losses and weighting, so a step here is the
    detector's step on the same images.

    Args:
        detector: a detector from `build_detector`.
        shapes: `{level: (height, width, channels)}` of the extractor's
            maps, in the order they are concatenated.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> detector_backbone(detector).trainable = False
    >>> head = CachedRetinaNetHead(detector, {"P3": (8, 8, 192), "P4": (4, 4, 576),
    ...                                       "P5": (2, 2, 1280)})
    >>> head.input.shape, head.output["cls_logits"].shape, len(head.trainable_weights) == len(
    ...     detector.trainable_weights)
    ((None, 26624), (None, 774, 2), True)
    """

    def __init__(self, detector, shapes, **kwargs):
        total = sum(math.prod(shape) for shape in shapes.values())
        inputs = keras.Input((total,), name="pyramid_features")
        maps, start = {}, 0
        for level, shape in shapes.items():
            size = math.prod(shape)
            maps[level] = keras.layers.Reshape(shape, name=f"map_{level}")(
                inputs[:, start:start + size])
            start += size
        pyramid = detector.backbone.feature_pyramid(maps)
        # the detector's graph: each level through both heads, then concatenated
        boxes, classes = [], []
        for level in pyramid:
            boxes.append(detector.get_layer(f"box_pred_{level}")(detector.box_head(pyramid[level])))
            classes.append(detector.get_layer(f"cls_pred_{level}")(
                detector.classification_head(pyramid[level])))
        outputs = {"bbox_regression": detector.get_layer("bbox_regression")(boxes),
                   "cls_logits": detector.get_layer("cls_logits")(classes)}
        super().__init__(inputs=inputs, outputs=outputs, name=kwargs.pop("name", "cached_head"),
                         **kwargs)
        self.num_classes = int(detector.num_classes)

    def compile(self, optimizer="auto", box_loss="auto", classification_loss="auto", **kwargs):
        """keras_hub's `ObjectDetector.compile` defaults: Adam 5e-5, Huber
        and focal losses summed (the weighting normalises them)."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)
        if box_loss == "auto":
            box_loss = keras.losses.Huber(reduction="sum")
        if classification_loss == "auto":
            classification_loss = keras.losses.BinaryFocalCrossentropy(from_logits=True,
                                                                        reduction="sum")
        super().compile(optimizer=optimizer,
                        loss={"bbox_regression": box_loss, "cls_logits": classification_loss},
                        **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        # RetinaNetObjectDetector.compute_loss after its label encoding:
        # positives weigh 1 in both losses, ignored anchors 0 in the class
        # loss, all divided by the batch's number of positives.
        boxes, labels = y[..., :4], y[..., 4]
        positive = ops.cast(ops.greater(labels, -1.0), "float32")
        normalizer = ops.maximum(ops.sum(positive), 1.0)
        class_weights = ops.cast(ops.not_equal(labels, -2.0), "float32") / normalizer
        y_true = {"bbox_regression": boxes,
                  "cls_logits": ops.one_hot(ops.cast(labels, "int32"), self.num_classes,
                                            dtype="float32")}
        weights = {"bbox_regression": positive / normalizer, "cls_logits": class_weights}
        weights = ops.cond(ops.sum(positive) == 0,
                           lambda: {key: ops.zeros_like(w) for key, w in weights.items()},
                           lambda: weights)
        return super().compute_loss(x=x, y=y_true, y_pred=y_pred, sample_weight=weights,
                                    **kwargs)


def encode_targets(detector, images, targets):
    """The anchor targets `detector` trains on for a batch of `images` and
    their `{"boxes", "labels"}` (pixel `xyxy`, padding -1), as its loss
    encodes them: `[batch, anchors, 5]` NumPy, each anchor's box deltas
    then its class (-1 background, -2 ignored). `CachedRetinaNetHead`
    trains on them.

    Example:
    >>> import keras_tl
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
    >>> y = {"boxes": np.array([[[8., 8., 40., 40.], [-1., -1., -1., -1.]]], "float32"),
    ...      "labels": np.array([[1, -1]], "int32")}
    >>> encoded = encode_targets(detector, np.zeros((1, 64, 64, 3), "float32"), y)
    >>> encoded.shape, sorted(set(encoded[0, :, 4].tolist()))
    ((1, 774, 5), [-2.0, -1.0, 1.0])
    """
    height, width = ops.shape(images)[1:3]
    encoder = detector.label_encoder
    y = keras.utils.bounding_boxes.convert_format(
        targets, source=detector.bounding_box_format, target=encoder.bounding_box_format,
        height=height, width=width)
    boxes, labels = encoder(images=images, gt_boxes=y["boxes"], gt_classes=y["labels"])
    boxes, labels = ops.convert_to_numpy(boxes), ops.convert_to_numpy(labels)
    return np.concatenate([boxes, labels.reshape(labels.shape[:2] + (1,))], axis=-1).astype(
        "float32")
