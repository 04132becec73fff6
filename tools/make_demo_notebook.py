"""Writes examples/fashion_mnist_demo.ipynb (run from the repository root)."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# Transfer learning on Fashion-MNIST with keras_tl

A small dataset (100 images per class) and a pretrained network: this notebook fine-tunes
the offline ImageNet MobileNetV2 (torchvision weights) in one call, looks at what each stage trained, and
compares the result with a frozen-backbone run and a from-scratch run.

Set `KERAS_TL_NOTEBOOK_FAST=1` to run it on a tiny budget (the tests do)."""),
code("""import os

import numpy as np

import keras_tl
from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample

FAST = os.environ.get("KERAS_TL_NOTEBOOK_FAST") == "1"
PER_CLASS, TEST_PER_CLASS, HEAD_EPOCHS, FINETUNE_EPOCHS = (10, 5, 1, 1) if FAST else (100, 100, 3, 5)
OUTPUT = os.environ.get("KERAS_TL_NOTEBOOK_OUTPUT", "runs/notebook")"""),
md("## The data\nGrayscale 28×28 images; keras_tl turns them into RGB and resizes them to the backbone's input."),
code("""(x, y), (x_test, y_test), class_names = load_fashion_mnist_sample(PER_CLASS, TEST_PER_CLASS)
print(x.shape, x_test.shape, class_names)"""),
md("## The backbone\nPreprocessing travels with the backbone: the model takes raw RGB pixels in [0, 255]."),
code("""spec = keras_tl.get_backbone_spec("mobilenet_v2_torch")
print(spec.source, spec.input_size, spec.preprocessing)"""),
md("""## Fine-tune in one call
Stage 1 trains the new head with the backbone frozen; stage 2 unfreezes the backbone
(BatchNorm statistics stay frozen) at a 10× lower learning rate with warm-up and cosine decay."""),
code("""result = keras_tl.finetune(
    (x, y), backbone="mobilenet_v2_torch", image_size=96, class_names=class_names,
    test_data=(x_test, y_test), stages=keras_tl.default_stages(HEAD_EPOCHS, FINETUNE_EPOCHS),
    output_dir=os.path.join(OUTPUT, "two_stage"), verbose=2)
result.metrics"""),
md("## What trained\nPer-block trainable parameters after the last stage (BatchNorm stays non-trainable)."),
code("""print(keras_tl.format_trainable_summary(result.model))"""),
code("""for stage, history in result.histories.items():
    print(stage, "learning rate per epoch:", [f"{v:.2e}" for v in history["learning_rate"]])"""),
md("## Predictions"),
code("""for true, top in zip(y_test[:5], result.predict(x_test[:5], top=2)):
    print(f"{class_names[true]:>12} -> {top}")"""),
md("""## What transfer learning buys
The same budget three ways: two-stage fine-tuning, the frozen backbone with a trained head only,
and the same architecture trained from scratch (`examples/fashion_mnist_demo.py`)."""),
code("""from fashion_mnist_demo import compare

table = compare(train_per_class=PER_CLASS, test_per_class=TEST_PER_CLASS, head_epochs=HEAD_EPOCHS,
                finetune_epochs=FINETUNE_EPOCHS, output=os.path.join(OUTPUT, "compare"), verbose=0)
{name: row for name, row in table.items() if name != "setup"}"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "examples/fashion_mnist_demo.ipynb")
