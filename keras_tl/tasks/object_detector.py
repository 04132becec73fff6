"""Object detection: RGB pixels in, boxes with classes and scores out.

The model is keras_hub's RetinaNet on a keras_tl image backbone
(`keras_tl.models.retinanet`); data are VOC, COCO or YOLO folders
(`keras_tl.data.detection`); metrics are COCO mAP (`keras_tl.evaluation`).
The frozen-backbone stage freezes the pretrained feature extractor; the
feature pyramid and the box and class heads train from the start. Without
augmentation that stage trains on the extractor's P3-P5 maps and the
anchor targets, both computed once (`split_head`, `cache_targets`; see
`keras_tl.training.cache`).

Predictions and every signature give boxes as `(xmin, ymin, xmax, ymax)` in
pixels of the image as given (its original size for files and bytes), NMS
applied, padded to `max_detections` (class id -1, name "" for padding).

The export spec (`export_spec`) serves the detections graph (NMS inside)
in every format: the SavedModel's signatures run keras_hub's NMS layer;
ONNX and LiteRT convert the same detections as a TensorFlow function
whose NMS is the converters' own op (`detections_function`,
`tensorflow_nms`: ONNX NonMaxSuppression, LiteRT NON_MAX_SUPPRESSION_V4),
`images` in, `boxes`, `scores`, `class_ids` and `num_detections` out, as
`serving_default`'s; it is verified against the SavedModel's detections
(`detection_view`, the box difference in pixels recorded). The pre-NMS
raw anchors stay available (`export(..., converted="raw_anchors")`):
`images` in, every anchor's `boxes` and `scores` out
(`keras_tl.models.retinanet.raw_detection_model`), to which `postprocess`
applies the NMS (`non_max_suppression`, with the settings the export
recorded in `info["nms"]`), so `keras-tl predict` gives the same
detections from every format and either form.
"""

import functools
import os

import numpy as np

from keras_tl.errors import ConfigError
from keras_tl.tasks import detection_reports
from keras_tl.tasks.base import Task
from keras_tl.tasks.options import OBJECT_DETECTION

DEFAULT_IMAGE_SIZE = 224  # divisible by 32, as the pyramid needs
MAX_DETECTIONS = 100


class ObjectDetection(Task):
    """Fine-tunes an ImageNet backbone into a RetinaNet box detector.

    Example:
    >>> from keras_tl.tasks import get_task
    >>> task = get_task("object_detection")
    >>> task.modality
    'image'

    """

    name = "object_detection"
    modality = "image"
    default_backbone = "mobilenet_v2_torch"
    options = OBJECT_DETECTION
    cached_feature_dtype = "float16"  # pyramid maps: 1.3 MB an image at 224 px in float32

    def recognizes(self, data, backbone=None):
        """A VOC, COCO or YOLO layout (not a folder of class sub-folders).

        Example:
        >>> get_task("object_detection").recognizes((np.zeros((2, 8, 8, 3)), [0, 1]))
        False
        """
        if not isinstance(data, (str, os.PathLike)):
            return False
        from keras_tl.data.detection import is_detection_data

        return is_detection_data(data)

    def default_stages(self, head_epochs=10, finetune_epochs=10):
        """Pyramid and heads with the backbone frozen (Adam 1e-4), then the
        backbone unfrozen (BatchNorm frozen) at 5e-5 with warm-up and
        cosine decay.

        Adam at 1e-3, the classifiers' head rate, blows a new RetinaNet head
        up in its first steps (focal loss in the hundreds) and it learns
        slower after: on 40 demo images, 60 head steps ended at a
        classification loss of 1.07 at 1e-3, 0.83 at 3e-4 and 0.52 at 1e-4
        (benchmarks/results/detection_head_rate.json). keras_hub trains its
        RetinaNet with Adam at 5e-5.

        Example:
        >>> [(s.name, s.learning_rate, s.unfreeze) for s in get_task("object_detection").default_stages()]
        [('head', 0.0001, None), ('finetune', 5e-05, 'all')]
        """
        from keras_tl.training.stages import Stage

        return [
            Stage("head", unfreeze=None, epochs=head_epochs, learning_rate=1e-4),
            Stage("finetune", unfreeze="all", epochs=finetune_epochs, learning_rate=5e-5,
                  warmup=0.1, schedule="cosine"),
        ]

    def prepare(self, data, backbone=None, *, batch_size=8, **kwargs):
        """`Task.prepare` with 8 images a batch by default.

        `image_size` (default 224, divisible by 32) is the square size
        images are resized to; `format` forces `"voc"`, `"coco"` or
        `"yolo"`. `anchor_size` (the smallest anchors are `anchor_size * 8`
        pixels) and `aspect_ratios` (height / width) default to those of
        4, 2 or 1 and 1/2-1-2 (plus 4:1 and 1:4) that fit the most training
        boxes (`keras_tl.models.retinanet.choose_anchors`); `info` records
        the choice and the fraction of boxes it fits.

        Example:
        >>> prepared = get_task("object_detection").prepare("shapes/")  # doctest: +SKIP
        """
        return super().prepare(data, backbone, batch_size=batch_size, **kwargs)

    def read(self, data, loaded=None, class_names=None, min_classes=2, format=None, **options):
        """The annotated images of a VOC, COCO or YOLO dataset.

        Example:
        >>> from keras_tl.datasets.detection_demo import detection_demo_path
        >>> examples = get_task("object_detection").read(detection_demo_path("test"))
        >>> len(examples) == len(examples.records), examples.format
        (True, 'coco')
        """
        from keras_tl.data.detection import load_detection_data

        loaded = load_detection_data(data, format=format, class_names=class_names)
        return AnnotatedImages(list(loaded.records), list(loaded.class_names), loaded.format)

    def split(self, examples, fraction, seed):
        """By image (all boxes of an image stay on one side), seeded."""
        from keras_tl.data.detection import split_records

        train, held_out = split_records(examples.records, fraction, seed)
        return (AnnotatedImages(train, examples.class_names, examples.format),
                AnnotatedImages(held_out, examples.class_names, examples.format))

    def load_backbone(self, backbone, weights, image_size=None, **options):
        from keras_tl.backbones import load_backbone

        return load_backbone(backbone, weights=weights, modality="image",
                             image_size=_square(image_size or DEFAULT_IMAGE_SIZE))

    def build_model(self, loaded, class_names, train, dropout, anchor_size=None,
                    aspect_ratios=None, **options):
        """RetinaNet on the backbone, its anchors chosen from the training
        boxes."""
        from keras_tl.models.retinanet import (ANCHOR_SIZES, ASPECT_RATIO_SETS, build_detector,
                                               choose_anchors)

        if dropout is not None:
            raise ConfigError("dropout does not apply to object detection; leave it unset.")
        size = tuple(loaded.input_size)
        train_boxes = [r.boxes * _box_scale(r, size) for r in train.records]
        anchors = choose_anchors(
            np.concatenate(train_boxes + [np.zeros((0, 4), "float32")]), size,
            anchor_sizes=ANCHOR_SIZES if anchor_size is None else (anchor_size,),
            aspect_ratio_sets=(ASPECT_RATIO_SETS if aspect_ratios is None
                               else (tuple(aspect_ratios),)))
        model = build_detector(loaded, len(class_names), anchor_size=anchors["anchor_size"],
                               aspect_ratios=anchors["aspect_ratios"],
                               max_detections=MAX_DETECTIONS)
        return model, dict(
            input_size=list(size),
            preprocessing=loaded.spec.preprocessing.to_config(),
            **anchors,
            max_detections=MAX_DETECTIONS,
            annotation_format=train.format)

    def dataset(self, examples, loaded, info, batch_size, training=False, seed=0,
                augment=False, **options):
        """Images decoded and resized to the input size, boxes scaled, each
        image's boxes padded to the most of any image of this part."""
        from keras_tl.data.detection import load_detection_arrays, make_detection_dataset

        images, boxes, ids = load_detection_arrays(examples.records, tuple(info["input_size"]))
        return make_detection_dataset(images, boxes, ids, batch_size, shuffle=training,
                                      augment=augment and training, seed=seed)

    def verification_sample(self, examples, info):
        """The first 16 validation images at the input size; their true
        boxes go into `info["validation_records"]` for the report."""
        from keras_tl.data.detection import load_detection_arrays

        size = tuple(info["input_size"])
        info["validation_records"] = _record_summaries(examples.records, size)
        return load_detection_arrays(examples.records[:16], size)[0]

    # -- training -----------------------------------------------------------
    def compile_options(self):
        """keras_hub's focal loss and smooth-L1 box loss (its defaults).

        Example:
        >>> get_task("object_detection").compile_options()
        {}
        """
        return {}

    def training_compile_options(self, label_smoothing=0.0):
        if label_smoothing:
            raise ConfigError("label_smoothing does not apply to object detection.")
        return self.compile_options()

    def split_head(self, model):
        """With the backbone frozen (the head stage): the backbone's P3-P5
        maps, computed once, and the feature pyramid and heads that train
        on them (`keras_tl.models.retinanet.split_detector`); `None` once
        the backbone trains.

        Example:
        >>> import keras_tl
        >>> from keras_tl.models.retinanet import build_detector, detector_backbone
        >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
        >>> detector = build_detector(loaded, num_classes=2, head_conv_layers=1)
        >>> detector_backbone(detector).trainable = False
        >>> [part.name for part in get_task("object_detection").split_head(detector)]
        ['cached_pyramid', 'cached_head']
        >>> detector_backbone(detector).trainable = True
        >>> get_task("object_detection").split_head(detector) is None
        True
        """
        from keras_tl.models.retinanet import split_detector

        return split_detector(model)

    def cache_targets(self, model, dataset):
        """The images with their anchor targets encoded once
        (`keras_tl.models.retinanet.encode_targets`), for the head stage
        on cached features; read once, batch by batch."""
        if dataset is None:
            return None
        import tensorflow as tf  # training only, as keras_hub below

        from keras_tl.models.retinanet import encode_targets
        from keras_tl.training.cache import backend_batches

        def batches():
            for images, targets in backend_batches(dataset):
                images = np.asarray(images)
                yield images, encode_targets(model, images, targets)

        return tf.data.Dataset.from_generator(batches, output_signature=(
            dataset.element_spec[0], tf.TensorSpec((None, None, 5), tf.float32)))

    def evaluate(self, model, dataset, class_names=None):
        """The detector's losses and COCO mAP (`map` = mAP@[.5:.95],
        `map_50`, `map_75`, `per_class_ap`) on a batched dataset. Boxes are
        compared at the model's input size: IoU does not change when both
        axes are scaled, so the APs equal those at the original sizes.

        Example:
        >>> get_task("object_detection").evaluate(None, None) is None
        True
        """
        metrics = super().evaluate(model, dataset)  # the losses
        if metrics is None:
            return None
        from keras_tl.data.detection import DetectionRecord
        from keras_tl.evaluation.coco import coco_metrics

        images, records = [], []
        for x, y in dataset.as_numpy_iterator():
            images.append(x)
            for boxes, ids in zip(y["boxes"], y["labels"]):
                keep = ids >= 0
                records.append(DetectionRecord("", x.shape[2], x.shape[1], boxes[keep], ids[keep]))
        predictions = model.predict(np.concatenate(images), verbose=0)
        names = class_names or [str(i) for i in range(int(model.num_classes))]
        metrics.update(coco_metrics(records, predictions, names))
        return metrics

    # -- inference ----------------------------------------------------------
    def prepare_inputs(self, inputs, info):
        """Image files or arrays (any size) as float32 `[n, H, W, 3]` at the
        model's size.

        Example:
        >>> get_task("object_detection").prepare_inputs(
        ...     np.zeros((1, 50, 80, 3)), {"input_size": [64, 64]}).shape
        (1, 64, 64, 3)
        """
        from keras_tl.data.images import prepare_images

        if getattr(inputs, "ndim", 0) == 3:
            inputs = inputs[None]
        return prepare_images(inputs, tuple(info["input_size"])).astype("float32")

    def postprocess(self, outputs, class_names, top=3, inputs=None, info=None):
        """One list of detections per image, best first:
        `{"class_name", "score", "box"}` with `box` in pixels of the image as
        given (`inputs`: files or arrays; without them, model-input pixels).
        `top` is ignored: every detection above the threshold is listed.
        Pre-NMS outputs (the raw-anchor graph's `boxes` and per-class
        `scores` of every anchor) go through `non_max_suppression` first,
        with `info["nms"]`'s settings.

        Example:
        >>> out = {"boxes": np.array([[[8., 8., 24., 40.], [-1, -1, -1, -1]]]),
        ...        "scores": np.array([[0.9, -1.]]), "class_ids": np.array([[1, -1]])}
        >>> get_task("object_detection").postprocess(out, ["cat", "dog"])
        [[{'class_name': 'dog', 'score': 0.9, 'box': [8.0, 8.0, 24.0, 40.0]}]]
        >>> raw = {"boxes": np.array([[[8., 8., 24., 40.], [9., 8., 24., 40.]]]),
        ...        "scores": np.array([[[0.1, 0.9], [0.8, 0.2]]])}
        >>> get_task("object_detection").postprocess(raw, ["cat", "dog"], info={"nms": {
        ...     "iou_threshold": 0.5, "confidence_threshold": 0.05, "max_detections": 100}})
        [[{'class_name': 'dog', 'score': 0.9, 'box': [8.0, 8.0, 24.0, 40.0]}]]
        """
        if _is_raw(outputs):
            outputs = batched_nms(outputs["boxes"], outputs["scores"], **nms_settings(info))
        boxes = np.asarray(_first(outputs, "boxes"), dtype="float32")
        scores = np.asarray(_first(outputs, "scores", "confidence"), dtype="float32")
        ids = np.asarray(_first(outputs, "class_ids", "labels")).astype(int)
        scales = _scales(inputs, info, len(boxes))
        predictions = []
        for image_boxes, image_scores, image_ids, scale in zip(boxes, scores, ids, scales):
            keep = image_ids >= 0
            order = np.argsort(-image_scores[keep], kind="stable")
            predictions.append([
                {"class_name": class_names[c], "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b * scale]}
                for b, s, c in zip(image_boxes[keep][order], image_scores[keep][order],
                                   image_ids[keep][order])
            ])
        return predictions

    # -- export -------------------------------------------------------------
    def export_spec(self, model, info, class_names, sample=None):
        """The detections graph (keras_hub's NMS inside) served as
        `serving_default` on pixels and `serving_bytes` on encoded files
        (`keras_tl.tasks.image_serving`), boxes in pixels of the image as
        given; converting formats convert the same detections on pixels
        (`detections_function`: NMS by the converters' own op), judged by
        `detection_view` with the box difference in pixels
        (`box_difference_pixels`) and the agreement of all detections above
        the NMS threshold (`detection_agreement`) recorded; the alternative `"raw_anchors"`
        converts the raw-anchor graph instead (`raw_detection_model`, no
        NMS), judged by `anchor_view`. The recorded `info` gains `nms`,
        the detector's NMS settings, which `postprocess` applies to
        raw-anchor outputs. Verified on `sample` (real validation images)
        when given, else 4 seeded random ones.

        Example:
        >>> spec = get_task("object_detection").export_spec(
        ...     None, {"input_size": [64, 64], "max_detections": 100}, ["cat"])
        >>> spec.contract()["serving_bytes"]["outputs"]["boxes"]
        {'dtype': 'float32', 'shape': [None, 100, 4], 'format': 'xmin, ymin, xmax, ymax in pixels of the image as given'}
        >>> [s.convertible for s in spec.signatures], spec.verification_inputs.shape
        ([False, False], (4, 64, 64, 3))
        >>> sorted(spec.converted.measures), sorted(spec.alternatives)
        (['all_detections_agreement', 'box_max_abs_diff_pixels'], ['raw_anchors'])
        """
        from keras_tl.export_spec import ConvertedGraph, ExportSpec, QualityCheck, named_outputs
        from keras_tl.tasks.image_serving import image_signatures, verification_images

        names = [str(n) for n in class_names]
        info = _with_nms(model, info)
        serve = raw = predict = raw_predict = function = None
        if model is not None:
            from keras_tl.models.retinanet import raw_detection_model

            serve = functools.partial(_detections, model, info, names)
            raw = raw_detection_model(model)
            predict = functools.partial(named_outputs, model)
            raw_predict = functools.partial(named_outputs, raw)
            function = functools.cache(functools.partial(detections_function, raw, info))
        signatures = image_signatures(info, _detections_contract(info), serve, convertible=False)
        detections = ConvertedGraph(
            raw, function=function, compare=functools.partial(detection_view, info=info),
            measures={"box_max_abs_diff_pixels": functools.partial(box_difference_pixels,
                                                                   info=info),
                      "all_detections_agreement": functools.partial(
                          detection_agreement, info=info, min_score=0.0)})
        raw_anchors = ConvertedGraph(raw, predict=raw_predict,
                                     compare=functools.partial(anchor_view, info=info))
        return ExportSpec(
            self.name, self.modality, names, info, signatures, converted=detections,
            alternatives={"raw_anchors": raw_anchors},
            verification_inputs=verification_images(info, sample, count=4), predict=predict,
            served=functools.partial(served_detections, class_names=names),
            quality=QualityCheck("detection_agreement",
                                 functools.partial(detection_agreement, info=info), 0.9),
            postprocess=lambda outputs, given, top: self.postprocess(
                outputs, names, top=top, inputs=given, info=info))

    # -- reports ------------------------------------------------------------
    def write_reports(self, result, output_dir):
        """`training_curves.png`: losses and the validation and test mAP;
        `detections.png`: validation photos at their own aspect ratio with
        true (green, class) and predicted (red, class and score) boxes
        (`keras_tl.tasks.detection_reports`)."""
        detection_reports.plot_detection_curves(
            result.histories, result.metrics, os.path.join(output_dir, "training_curves.png"))
        sample = getattr(result, "verification_sample", None)
        if sample is None:
            return
        images = np.asarray(sample[:6], dtype="float32")
        predictions = self.postprocess(result.model.predict(images, verbose=0),
                                       result.class_names)
        records = (result.info.get("validation_records") or [])[:len(images)]
        height, width = images.shape[1:3]
        # each photo at its own size (runs before it was recorded: the input's)
        sizes = [(r.get("height", height), r.get("width", width)) for r in records]
        sizes += [(height, width)] * (len(images) - len(sizes))
        scales = [np.asarray([w / width, h / height] * 2) for h, w in sizes]
        predictions = [[dict(p, box=(np.asarray(p["box"]) * scale).tolist()) for p in found]
                       for found, scale in zip(predictions, scales)]
        truth = [dict(boxes=(np.reshape(r["boxes"], (-1, 4)) * scale).tolist(),
                      class_ids=r["class_ids"]) for r, scale in zip(records, scales)]
        names = [r["image"] for r in records] + [
            f"validation image {i + 1}" for i in range(len(records), len(images))]
        detection_reports.plot_detections(
            images, predictions, os.path.join(output_dir, "detections.png"), names=names,
            sizes=sizes, truth=truth or None, class_names=result.class_names,
            title="Validation images")


def _with_nms(model, info):
    """`info` with `nms`: the detector's NMS settings (`iou_threshold`,
    `confidence_threshold`, `max_detections`), which clients of the
    raw-anchor graph apply; `info` as it is without a detector."""
    decoder = getattr(model, "prediction_decoder", None)
    if decoder is None:
        return info
    return {**info, "nms": dict(iou_threshold=float(decoder.iou_threshold),
                                confidence_threshold=float(decoder.confidence_threshold),
                                max_detections=int(decoder.max_detections))}


def _detections_contract(info):
    """The outputs of both detection signatures."""
    n = int(info.get("max_detections", MAX_DETECTIONS))
    return {
        "boxes": {"dtype": "float32", "shape": [None, n, 4],
                  "format": "xmin, ymin, xmax, ymax in pixels of the image as given"},
        "scores": {"dtype": "float32", "shape": [None, n]},
        "class_ids": {"dtype": "int64", "shape": [None, n], "padding": -1},
        "class_names": {"dtype": "string", "shape": [None, n], "padding": ""},
        "num_detections": {"dtype": "int32", "shape": [None]},
    }


def _detections(model, info, class_names, images, original_sizes):
    """The detections graph in TensorFlow ops: NMS'd boxes scaled to each
    image's original size, padding -1 (class name "")."""
    import tensorflow as tf  # serving graphs only

    height, width = (int(v) for v in info["input_size"])
    names = tf.constant([""] + list(class_names), dtype=tf.string)
    decoded = model.decode_predictions(model(images, training=False), images)
    scale = tf.cast(original_sizes, tf.float32) / tf.constant([height, width], tf.float32)
    boxes = tf.cast(decoded["boxes"], tf.float32)
    ids = tf.cast(decoded["labels"], tf.int64)
    valid = ids >= 0
    boxes *= tf.stack([scale[:, 1], scale[:, 0], scale[:, 1], scale[:, 0]], axis=1)[:, None]
    return {
        "boxes": tf.where(valid[..., None], boxes, -1.0),
        "scores": tf.cast(decoded["confidence"], tf.float32),
        "class_ids": ids,
        "class_names": tf.gather(names, ids + 1),
        "num_detections": tf.cast(decoded["num_detections"], tf.int32),
    }


def served_detections(model_outputs, class_names):
    """The detector's decoded outputs under the signatures' names: what
    its signatures are verified against (the detections graph's own
    outputs, `class_ids` and `scores`, are taken as well).

    Example:
    >>> ref = served_detections(
    ...     {"boxes": np.zeros((1, 1, 4)), "confidence": np.array([[0.5]]),
    ...      "labels": np.array([[0]]), "num_detections": np.array([1])}, ["cat"])
    >>> sorted(ref), ref["class_names"].tolist()
    (['boxes', 'class_ids', 'class_names', 'num_detections', 'scores'], [['cat']])
    """
    ids = np.asarray(_first(model_outputs, "labels", "class_ids")).astype("int64")
    names = np.asarray([""] + [str(n) for n in class_names], dtype=object)[ids + 1]
    return {"boxes": np.asarray(model_outputs["boxes"], "float32"),
            "scores": np.asarray(_first(model_outputs, "confidence", "scores"), "float32"),
            "class_ids": ids, "class_names": names,
            "num_detections": np.asarray(model_outputs["num_detections"]).astype("int32")}


def anchor_view(outputs, reference, info):
    """How the raw-anchor graph is judged: `scores` as they are, and
    `boxes` in units of the input's width and height on the anchors the
    detector's NMS considers (Keras scores above `info["nms"]`'s confidence
    threshold; 0 elsewhere on both sides). A box is the anchor's delta
    decoded through `exp`: anchors far from any object may have large
    deltas, whose float32 rounding (a few ulps of a value in the thousands
    of pixels) says nothing about the detections.

    Example:
    >>> ref = {"boxes": np.array([[[8., 8., 32., 64.], [0., 0., 64., 64.]]]),
    ...        "scores": np.array([[[0.9], [0.01]]])}
    >>> out = {"boxes": ref["boxes"] + [[[0.0064], [3.0]]], "scores": ref["scores"]}
    >>> got, expected = anchor_view(
    ...     out, ref, {"input_size": [64, 64], "nms": {"confidence_threshold": 0.05}})
    >>> round(float(np.abs(got["boxes"] - expected["boxes"]).max()), 6)
    0.0001
    """
    if not {"boxes", "scores"} <= set(reference):
        return outputs, reference
    height, width = (float(v) for v in info["input_size"])
    scale = np.asarray([width, height, width, height], "float32")
    considered = (np.asarray(reference["scores"]).max(axis=-1)
                  > nms_settings(info)["confidence_threshold"])[..., None]

    def view(values):
        if "boxes" not in values:
            return values
        boxes = np.asarray(values["boxes"], "float32")
        if boxes.shape[:-1] != considered.shape[:-1]:
            return values  # a shape mismatch the report states as it is
        return {**values, "boxes": np.where(considered, boxes / scale, 0.0)}

    return view(outputs), view(reference)


def detection_agreement(outputs, reference, info, min_score=detection_reports.MIN_SCORE,
                        min_iou=0.5):
    """How a lossy format's detections match the Keras model's (a
    detector's int8 quality, where mAP on a handful of verification images
    says little): raw-anchor outputs through the detector's NMS first
    (`detections_of`; detections are taken as they are), the
    detections scoring at least `min_score` (those the reports draw) on
    each side matched one to one, best Keras score first, to one of the
    same class with IoU >= `min_iou`; returns `2 * matched / (Keras
    detections + format detections)`, 1.0 when neither side has any.

    Example:
    >>> info = {"nms": {"iou_threshold": 0.5, "confidence_threshold": 0.05, "max_detections": 5}}
    >>> ref = {"boxes": np.array([[[0., 0., 10., 10.], [20., 20., 30., 30.]]]),
    ...        "scores": np.array([[[0.9, 0.0], [0.0, 0.8]]])}
    >>> detection_agreement({**ref, "boxes": ref["boxes"] + 1.0}, ref, info)
    1.0
    >>> detection_agreement({**ref, "scores": ref["scores"][..., ::-1]}, ref, info)  # classes swapped
    0.0
    """
    got, expected = (detections_of(values, info) for values in (outputs, reference))
    matched = total = 0
    for b in range(len(expected["boxes"])):
        sides = []
        for detections in (expected, got):
            keep = detections["scores"][b] >= min_score
            sides.append((detections["boxes"][b][keep], detections["class_ids"][b][keep]))
        (ref_boxes, ref_ids), (got_boxes, got_ids) = sides
        total += len(ref_ids) + len(got_ids)
        free = np.ones(len(got_ids), bool)
        for box, class_id in zip(ref_boxes, ref_ids):  # best first, as NMS returns them
            width = np.minimum(got_boxes[:, 2], box[2]) - np.maximum(got_boxes[:, 0], box[0])
            height = np.minimum(got_boxes[:, 3], box[3]) - np.maximum(got_boxes[:, 1], box[1])
            inter = np.maximum(width, 0) * np.maximum(height, 0)
            union = ((box[2] - box[0]) * (box[3] - box[1]) + (got_boxes[:, 2] - got_boxes[:, 0])
                     * (got_boxes[:, 3] - got_boxes[:, 1]) - inter)
            candidates = free & (got_ids == class_id) & (inter / (union + 1e-8) >= min_iou)
            if candidates.any():
                free[np.flatnonzero(candidates)[0]] = False
                matched += 1
    return 1.0 if total == 0 else 2.0 * matched / total


def detections_of(outputs, info=None):
    """Detections (`boxes`, `scores`, `class_ids` padded with -1,
    `num_detections`) from a detector's outputs: raw-anchor outputs through
    `batched_nms` with `info["nms"]`'s settings, the outputs of a graph with
    NMS inside (the detections graph's, the SavedModel's, the Keras
    model's `confidence` and `labels`) as they are.

    Example:
    >>> raw = {"boxes": np.array([[[0., 0., 10., 10.]]]), "scores": np.array([[[0.2, 0.7]]])}
    >>> info = {"nms": {"iou_threshold": 0.5, "confidence_threshold": 0.05, "max_detections": 2}}
    >>> detections_of(raw, info)["class_ids"].tolist()
    [[1, -1]]
    >>> detections_of({"boxes": np.zeros((1, 1, 4)), "confidence": np.array([[0.5]]),
    ...                "labels": np.array([[0]]), "num_detections": np.array([1])})["scores"]
    array([[0.5]], dtype=float32)
    """
    if _is_raw(outputs):
        return batched_nms(outputs["boxes"], outputs["scores"], **nms_settings(info))
    ids = np.asarray(_first(outputs, "class_ids", "labels")).astype("int64")
    found = {"boxes": np.array(outputs["boxes"], "float32"),
             "scores": np.array(_first(outputs, "scores", "confidence"), "float32"),
             "class_ids": ids}
    count = outputs.get("num_detections")
    found["num_detections"] = (np.asarray(count).astype("int32") if count is not None
                               else (ids >= 0).sum(-1).astype("int32"))
    return found


def tensorflow_nms(boxes, scores, iou_threshold, confidence_threshold, max_detections,
                   image_width):
    """The detector's NMS (`non_max_suppression`: each anchor its best
    class, greedy over all classes, best first, ties to the earlier
    anchor) on a batch of raw-anchor outputs, in TensorFlow ops that
    tf2onnx (ONNX NonMaxSuppression) and the LiteRT converter
    (NON_MAX_SUPPRESSION_V4) carry, with no loop: the images' boxes are
    shifted apart along x by `image_width + 1` pixels (boxes are clipped
    to the image, so boxes of two images never overlap) and one NMS runs
    on all of them; each image keeps its first `max_detections`. `boxes`
    `[batch, n, 4]` `xmin, ymin, xmax, ymax` in pixels, `scores` `[batch,
    n, classes]`. Returns `boxes`, `scores`, `class_ids` (int64), padded
    to `max_detections` with -1, and `num_detections` (int32), as the
    SavedModel's signatures.

    Example:
    >>> import tensorflow as tf
    >>> boxes = tf.constant([[[0., 0., 10., 10.], [1., 0., 10., 10.], [20., 20., 30., 30.]]] * 2)
    >>> scores = tf.constant([[[0.9, 0.0], [0.0, 0.8], [0.3, 0.04]],
    ...                       [[0.0, 0.1], [0.7, 0.0], [0.01, 0.02]]])
    >>> out = tensorflow_nms(boxes, scores, 0.5, 0.05, 2, image_width=32)
    >>> out["class_ids"].numpy().tolist(), out["num_detections"].numpy().tolist()
    ([[0, 0], [0, -1]], [2, 1])
    >>> out["boxes"].numpy()[1].tolist()
    [[1.0, 0.0, 10.0, 10.0], [-1.0, -1.0, -1.0, -1.0]]
    """
    import tensorflow as tf  # serving graphs only

    most = int(max_detections)
    batch, anchors = tf.shape(boxes)[0], tf.shape(boxes)[1]
    confidence = tf.reshape(tf.reduce_max(scores, axis=-1), [-1])
    labels = tf.reshape(tf.argmax(scores, axis=-1, output_type=tf.int32), [-1])
    flat = tf.reshape(boxes, [-1, 4])
    shift = tf.cast(tf.range(batch), boxes.dtype) * float(image_width + 1)
    shifted = tf.reshape(boxes + tf.stack([shift, tf.zeros_like(shift)] * 2, axis=1)[:, None],
                         [-1, 4])
    # the greedy kernel itself (tf.image.non_max_suppression_padded would run a tiled loop)
    selected, count = tf.raw_ops.NonMaxSuppressionV4(
        boxes=shifted, scores=confidence, max_output_size=batch * anchors,
        iou_threshold=float(iou_threshold), score_threshold=float(confidence_threshold),
        pad_to_max_output_size=True)
    selected = selected[:count]
    image = selected // anchors
    member = tf.cast(tf.equal(image[:, None], tf.range(batch)[None]), tf.int32)
    rank = tf.reduce_sum(tf.cumsum(member, axis=0) * member, axis=1) - 1
    # the places of each image's first `most`; later ones go to a column dropped after
    places = tf.stack([image, tf.minimum(rank, most)], axis=1)
    shape = tf.stack([batch, most + 1])
    valid = tf.scatter_nd(places, tf.ones_like(image), shape)[:, :most] > 0

    def place(values, padding):
        spread = tf.scatter_nd(places, values, tf.concat([shape, tf.shape(values)[1:]], 0))
        mask = valid if values.shape.rank == 1 else valid[..., None]
        return tf.where(mask, spread[:, :most], tf.cast(padding, values.dtype))

    return {"boxes": place(tf.gather(flat, selected), -1.0),
            "scores": place(tf.gather(confidence, selected), -1.0),
            "class_ids": tf.cast(place(tf.gather(labels, selected), -1), tf.int64),
            "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)}


def detections_function(raw_model, info):
    """The detections graph that ONNX and LiteRT convert: a `tf.function`
    on `images` float32 `[batch, H, W, 3]` (the detector's input size)
    returning `boxes`, `scores`, `class_ids` and `num_detections` as
    `serving_default` does (boxes in pixels of the input): the raw-anchor
    model `raw_model` (`raw_detection_model`) and `tensorflow_nms` with
    `info["nms"]`'s settings.

    Example:
    >>> import keras_tl
    >>> from keras_tl.models.retinanet import build_detector, raw_detection_model
    >>> loaded = keras_tl.load_backbone("mobilenet_v2", weights=None, image_size=64)
    >>> raw = raw_detection_model(build_detector(loaded, num_classes=2, head_conv_layers=1))
    >>> fn = detections_function(raw, {"input_size": [64, 64], "max_detections": 5})
    >>> {k: v.shape.as_list() for k, v in sorted(fn(np.zeros((2, 64, 64, 3), "float32")).items())}
    {'boxes': [2, 5, 4], 'class_ids': [2, 5], 'num_detections': [2], 'scores': [2, 5]}
    """
    import tensorflow as tf  # serving graphs only

    from keras_tl.tasks.image_serving import INPUT_NAME

    height, width = (int(v) for v in info["input_size"])
    settings = nms_settings(info)

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32,
                                                name=INPUT_NAME)], autograph=False)
    def detections(images):
        outputs = raw_model(images, training=False)
        return tensorflow_nms(outputs["boxes"], outputs["scores"], image_width=width, **settings)

    return detections


def _matched(outputs, reference, info, min_score, margin=1e-4):
    """Each image's detections scoring at least `min_score` of a format
    (`outputs`) and of the Keras model (`reference`), matched one to one:
    for each reference detection, best first, the format's free one of the
    same class with the nearest box. Detections left unmatched whose score
    is within `margin` of `min_score` (or of the lowest score kept, when
    `max_detections` were kept) are left out: a near-tie that a last-bit
    difference decides. Returns `(got, expected)`, `[batch, rows]` arrays
    (boxes in pixels) in the same row order, padded with -1: matched pairs,
    then unmatched detections facing padding."""
    got, expected = (detections_of(values, info) for values in (outputs, reference))
    settings = nms_settings(info)
    rows = []
    for b in range(len(expected["boxes"])):
        sides = []
        for found in (got, expected):
            keep = (found["class_ids"][b] >= 0) & (found["scores"][b] >= min_score - margin)
            sides.append([found[key][b][keep] for key in ("boxes", "scores", "class_ids")])
        (g_boxes, g_scores, g_ids), (e_boxes, e_scores, e_ids) = sides
        free = np.ones(len(g_ids), bool)
        pairs, lonely = [], []
        for i in range(len(e_ids)):
            candidates = np.flatnonzero(free & (g_ids == e_ids[i]))
            if len(candidates):
                j = candidates[np.abs(g_boxes[candidates] - e_boxes[i]).max(-1).argmin()]
                free[j] = False
                pairs.append((j, i))
            else:
                lonely.append((None, i))
        lonely += [(j, None) for j in np.flatnonzero(free)]

        def borderline(j, i):
            score, count = (g_scores[j], len(g_ids)) if i is None else (e_scores[i], len(e_ids))
            floors = [max(min_score, settings["confidence_threshold"])]
            if count >= settings["max_detections"]:
                floors.append((g_scores if i is None else e_scores).min())
            return min(abs(score - floor) for floor in floors) <= margin

        rows.append([(j, i) for j, i in pairs]
                    + [(j, i) for j, i in lonely if not borderline(j, i)])
        rows[-1] = (rows[-1], sides)
    width = max([len(r) for r, _ in rows] + [1])
    views = []
    for side in (0, 1):
        boxes = np.full((len(rows), width, 4), -1.0, "float32")
        scores = np.full((len(rows), width), -1.0, "float32")
        ids = np.full((len(rows), width), -1, "int64")
        for b, (image_rows, sides) in enumerate(rows):
            found_boxes, found_scores, found_ids = sides[side]
            for r, pair in enumerate(image_rows):
                k = pair[side]
                if k is not None:
                    boxes[b, r], scores[b, r], ids[b, r] = (found_boxes[k], found_scores[k],
                                                            found_ids[k])
        views.append({"boxes": boxes, "scores": scores, "class_ids": ids})
    return views[0], views[1]


def detection_view(outputs, reference, info, min_score=detection_reports.MIN_SCORE):
    """How the detections graph (NMS inside: ONNX, LiteRT) is judged
    against the SavedModel's detections: each image's detections scoring
    at least `min_score` (those the reports draw) matched one to one (same
    class, nearest box; a near-tie at `min_score` or at the
    `max_detections` cut left out), so that the order of near-equal scores
    does not matter; `class_ids` compared exactly (an unmatched detection
    faces padding), `scores` as they are, `boxes` in units of the input's
    width and height (the tolerance's scale; `box_difference_pixels`
    records them in pixels). Below `min_score`, where a detector's scores
    crowd near its prior, a last-bit difference between runtimes reorders
    near-equal scores and NMS then keeps other boxes: those detections are
    measured (`detection_agreement` with `min_score=0`), not held to the
    tolerance.

    Example:
    >>> info = {"input_size": [64, 64], "nms": {"iou_threshold": 0.5,
    ...         "confidence_threshold": 0.05, "max_detections": 5}}
    >>> ref = {"boxes": np.array([[[0., 0., 32., 32.], [8., 8., 16., 16.]]]),
    ...        "scores": np.array([[0.9, 0.9]]), "class_ids": np.array([[0, 1]])}
    >>> swapped = {key: value[:, ::-1] for key, value in ref.items()}  # a tie in another order
    >>> got, expected = detection_view(swapped, ref, info)
    >>> got["class_ids"].tolist(), got["boxes"][0, 0].tolist()
    ([[0, 1]], [0.0, 0.0, 0.5, 0.5])
    """
    height, width = (float(v) for v in info["input_size"])
    scale = np.asarray([width, height, width, height], "float32")
    views = []
    for view in _matched(outputs, reference, info, min_score):
        valid = view["class_ids"][..., None] >= 0
        views.append({**view, "boxes": np.where(valid, view["boxes"] / scale, -1.0)})
    return views[0], views[1]


def box_difference_pixels(outputs, reference, info, min_score=detection_reports.MIN_SCORE):
    """The largest difference, in pixels of the input, between a box of a
    format's detections and that of the Keras model's it matches
    (`detection_view`'s matching, detections scoring at least
    `min_score`); 0.0 with no detection on either side.

    Example:
    >>> info = {"input_size": [64, 64], "nms": {"iou_threshold": 0.5,
    ...         "confidence_threshold": 0.05, "max_detections": 5}}
    >>> ref = {"boxes": np.array([[[0., 0., 32., 32.]]]), "scores": np.array([[0.9]]),
    ...        "class_ids": np.array([[0]])}
    >>> box_difference_pixels({**ref, "boxes": ref["boxes"] + 0.25}, ref, info)
    0.25
    """
    got, expected = _matched(outputs, reference, info, min_score)
    both = (got["class_ids"] >= 0) & (expected["class_ids"] >= 0)
    if not both.any():
        return 0.0
    return float(np.abs(got["boxes"][both] - expected["boxes"][both]).max())


def _square(size):
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(v) for v in size)
    if len(size) != 2 or size[0] % 32 or size[1] % 32:
        raise ConfigError(f"A detector's image_size must be divisible by 32 (e.g. 224, 320); "
                          f"got {size}.")
    return size


def non_max_suppression(boxes, scores, iou_threshold=None, confidence_threshold=None,
                        max_detections=None):
    """The detector's NMS in NumPy (as its NMS layer runs in the SavedModel:
    TensorFlow's greedy kernel), for one image's pre-NMS outputs:
    each anchor is one candidate, its best class (`scores` `[n, classes]`)
    with that class's score; candidates scoring above
    `confidence_threshold` are taken best first (ties: the earlier anchor
    first), each dropped when its IoU with one already taken is above
    `iou_threshold`, whatever the classes, until `max_detections`. `boxes` are `[n, 4]` `xmin, ymin, xmax, ymax`.
    Returns the indices taken, best first. The settings have no defaults
    here: they come from the detector (an export's `info["nms"]`).

    Example:
    >>> boxes = np.array([[0., 0., 10., 10.], [1., 0., 10., 10.], [20., 20., 30., 30.]])
    >>> scores = np.array([[0.9, 0.0], [0.0, 0.8], [0.3, 0.04]])
    >>> non_max_suppression(boxes, scores, 0.5, 0.05, 100).tolist()
    [0, 2]
    """
    if None in (iou_threshold, confidence_threshold, max_detections):
        raise ConfigError("non_max_suppression needs iou_threshold, confidence_threshold and "
                          "max_detections (an export's info['nms']).")
    boxes = np.asarray(boxes, "float32").reshape(-1, 4)
    confidence = np.asarray(scores, "float32").max(axis=-1)
    candidates = np.flatnonzero(confidence > confidence_threshold)
    order = candidates[np.lexsort((candidates, -confidence[candidates]))]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    taken = []
    for i in order:
        if len(taken) >= max_detections:
            break
        if taken:
            kept = boxes[taken]
            width = np.minimum(kept[:, 2], boxes[i, 2]) - np.maximum(kept[:, 0], boxes[i, 0])
            height = np.minimum(kept[:, 3], boxes[i, 3]) - np.maximum(kept[:, 1], boxes[i, 1])
            inter = np.maximum(width, 0) * np.maximum(height, 0)
            if np.any(inter / (area[taken] + area[i] - inter + 1e-8) > iou_threshold):
                continue
        taken.append(i)
    return np.asarray(taken, dtype="int64")


def batched_nms(boxes, scores, iou_threshold=None, confidence_threshold=None,
                max_detections=None):
    """`non_max_suppression` on a batch of pre-NMS outputs (`boxes`
    `[batch, n, 4]`, `scores` `[batch, n, classes]`), returned as the
    SavedModel's signatures return detections: `boxes`, `scores`,
    `class_ids` padded to `max_detections` (-1), and `num_detections`.

    Example:
    >>> out = batched_nms(np.array([[[0., 0., 10., 10.]]]), np.array([[[0.2, 0.7]]]),
    ...                   0.5, 0.05, 3)
    >>> out["class_ids"].tolist(), out["num_detections"].tolist()
    ([[1, -1, -1]], [1])
    """
    boxes, scores = np.asarray(boxes, "float32"), np.asarray(scores, "float32")
    n = int(max_detections)
    out = {"boxes": np.full((len(boxes), n, 4), -1.0, "float32"),
           "scores": np.full((len(boxes), n), -1.0, "float32"),
           "class_ids": np.full((len(boxes), n), -1, "int64"),
           "num_detections": np.zeros(len(boxes), "int32")}
    for b, (image_boxes, image_scores) in enumerate(zip(boxes, scores)):
        taken = non_max_suppression(image_boxes, image_scores, iou_threshold,
                                    confidence_threshold, n)
        k = len(taken)
        out["boxes"][b, :k] = image_boxes[taken]
        out["scores"][b, :k] = image_scores[taken].max(axis=-1)
        out["class_ids"][b, :k] = image_scores[taken].argmax(axis=-1)
        out["num_detections"][b] = k
    return out


def nms_settings(info):
    """The NMS settings an export recorded (`info["nms"]`); for info
    without them (a run's own), `build_detector`'s defaults with the run's
    `max_detections`.

    Example:
    >>> nms_settings({"nms": {"iou_threshold": 0.6, "confidence_threshold": 0.1,
    ...                       "max_detections": 10}})["iou_threshold"]
    0.6
    >>> nms_settings({"max_detections": 7})["max_detections"]
    7
    """
    info = info or {}
    if info.get("nms"):
        return dict(info["nms"])
    import inspect

    from keras_tl.models.retinanet import build_detector

    defaults = inspect.signature(build_detector).parameters
    settings = {key: defaults[key].default
                for key in ("iou_threshold", "confidence_threshold", "max_detections")}
    settings["max_detections"] = int(info.get("max_detections") or settings["max_detections"])
    return settings


def _is_raw(outputs):
    """Whether detector outputs are pre-NMS (boxes and per-class scores of
    every anchor, no class ids)."""
    return (isinstance(outputs, dict) and "boxes" in outputs and "scores" in outputs
            and "class_ids" not in outputs and "labels" not in outputs
            and np.ndim(outputs["scores"]) == 3)


def _first(outputs, *keys):
    for key in keys:
        if key in outputs:
            return outputs[key]
    raise KeyError(f"none of {keys} in the detector's outputs {sorted(outputs)}")


class AnnotatedImages:
    """Detection examples for `Task.prepare`: the annotated images
    (`DetectionRecord`s), the class names and the layout they came from.

    Example:
    >>> len(AnnotatedImages([], ["cat"], "coco"))
    0
    """

    def __init__(self, records, class_names, format):
        self.records, self.class_names, self.format = records, class_names, format

    def __len__(self):
        return len(self.records)


def _box_scale(record, size):
    """Multiplies a record's pixel boxes to the model's `(height, width)`."""
    return np.asarray([size[1] / record.width, size[0] / record.height] * 2, "float32")


def _record_summaries(records, size, limit=16):
    """The first records' true boxes at the model's input size (as the
    verification sample's images are) and the photos' own sizes, for the
    report."""
    if not records:
        return None
    summaries = []
    for r in records[:limit]:
        summaries.append(dict(image=os.path.basename(r.image_path),
                              width=int(r.width), height=int(r.height),
                              boxes=(r.boxes * _box_scale(r, size)).round(1).tolist(),
                              class_ids=r.class_ids.tolist()))
    return summaries


def _scales(inputs, info, count):
    """Per image, the factor from model-input pixels to the image as given."""
    if inputs is None or info is None:
        return [np.ones(4, "float32")] * count
    height, width = (float(v) for v in info["input_size"])
    sizes = []
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (str, os.PathLike)):
        from PIL import Image, ImageOps

        for path in inputs:
            with Image.open(path) as image:
                w, h = ImageOps.exif_transpose(image).size
            sizes.append((h, w))
    else:
        arrays = np.asarray(inputs) if not isinstance(inputs, (list, tuple)) else inputs
        if getattr(arrays, "ndim", 0) == 3:
            arrays = arrays[None]
        sizes = [np.shape(a)[:2] for a in arrays]
    return [np.asarray([w / width, h / height, w / width, h / height], "float32")
            for h, w in sizes]
