"""Object-detection data: Pascal VOC, COCO and YOLO layouts read into one
record format, box-aware augmentation for `tf.data`, and a split by image.

Every layout becomes a list of `DetectionRecord`s (image path, width, height,
float32 `[n, 4]` boxes as `xmin, ymin, xmax, ymax` in pixels of the image as
stored, int32 `[n]` class ids) plus the class names. By concern:

- `formats`: recognising a layout and reading it (`load_detection_data`);
  `voc`, `coco` and `yolo` hold each layout's conventions and reader.
- `records`: `DetectionRecord`, `DetectionData`.
- `validation`: the checks every reader shares (boxes against their image,
  unpaired files, empty sets); `files`: listing and sizing image files.
- `arrays`: the split by image and the decoded, resized arrays.
- `augmentation` and `pipeline`: box-aware TF augmentation and the batched
  `tf.data` pipeline.
"""

from keras_tl.data.detection.arrays import load_detection_arrays, split_records
from keras_tl.data.detection.augmentation import random_flip, random_scale_crop
from keras_tl.data.detection.formats import detect_format, is_detection_data, load_detection_data
from keras_tl.data.detection.pipeline import make_detection_dataset
from keras_tl.data.detection.records import DetectionRecord
