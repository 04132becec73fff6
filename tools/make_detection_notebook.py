"""Writes examples/object_detection.ipynb (run from the repository root)."""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Object detection with keras_tl

Four kinds of objects (astronaut, cat, cup, rocket) pasted onto real photos, 128 px images,
and one call to train a RetinaNet detector on an ImageNet backbone (MobileNetV2, imported
offline). Metrics are COCO mAP on a held-out test split.

Set `KERAS_TL_NOTEBOOK_FAST=1` to run it on a tiny budget (the tests do)."""),
    code("""import os

import keras_tl
from keras_tl.data.detection import load_detection_data
from object_detection import compare, limited_split

FAST = os.environ.get("KERAS_TL_NOTEBOOK_FAST") == "1"
LIMIT, HEAD_EPOCHS, FINETUNE_EPOCHS = (24, 1, 1) if FAST else (None, 5, 5)
OUTPUT = os.environ.get("KERAS_TL_NOTEBOOK_OUTPUT", "runs/detection_notebook")"""),
    md("""## The data
The shipped demo set in COCO layout (`instances.json` and `images/`): 400 training and 100
test images, 0 to 5 objects each, overlapping and cut by the edges."""),
    code("""train = limited_split("train", LIMIT, os.path.join(OUTPUT, "data"))
test = limited_split("test", LIMIT, os.path.join(OUTPUT, "data"))
data = load_detection_data(train)
print(data.format, len(data.records), "training images, classes:", data.class_names)
print("objects per image:", [r.num_objects for r in data.records[:10]])"""),
    md("""## Train in one call
Stage 1 trains the feature pyramid and the box and class heads with the backbone frozen;
stage 2 unfreezes the backbone at a 10× lower rate with warm-up and cosine decay."""),
    code("""task = keras_tl.get_task("object_detection")
result = keras_tl.finetune(
    train, "mobilenet_v2_torch", image_size=128, test_data=test, batch_size=8,
    stages=task.default_stages(HEAD_EPOCHS, FINETUNE_EPOCHS),
    output_dir=os.path.join(OUTPUT, "two_stage"), verbose=2)
{key: value for key, value in result.metrics["test"].items()
 if key in ("map", "map_50", "map_75", "per_class_ap")}"""),
    md("""## Detections on two test images
Boxes are `(xmin, ymin, xmax, ymax)` in pixels of the image as given, best score first."""),
    code("""test_images = [record.image_path for record in load_detection_data(test).records[:2]]
for path, detections in zip(test_images, result.predict(test_images)):
    print(os.path.basename(path), "->", len(detections), "detections")
    for detection in detections[:5]:
        print("   ", detection)"""),
    md("""## Export
A verified SavedModel with NMS in the graph: `serving_default` takes images, `serving_bytes`
takes encoded JPEG/PNG bytes."""),
    code("""report = keras_tl.export(result, os.path.join(OUTPUT, "saved_models", "detector"))
print(report.summary())"""),
    md("""## What the ImageNet backbone buys
The same detector and epoch budget from random initialisation
(`examples/object_detection.py`)."""),
    code("""table = compare(HEAD_EPOCHS, FINETUNE_EPOCHS, limit=LIMIT, output=os.path.join(OUTPUT, "compare"),
                verbose=0)
{name: {k: row[k] for k in ("map_50", "map", "seconds")} for name, row in table.items()
 if name != "setup"}"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "examples/object_detection.ipynb")
