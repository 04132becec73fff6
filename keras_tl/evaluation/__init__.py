"""Evaluation metrics beyond what Keras computes: COCO detection mAP."""

from keras_tl.evaluation.coco import coco_metrics, split_batched_predictions

__all__ = ["coco_metrics", "split_batched_predictions"]
