"""What an ImageNet backbone buys a detector: four object classes, 128 px.

Trains RetinaNet on the offline ImageNet MobileNetV2 (`mobilenet_v2_torch`),
two-stage (pyramid and heads on the frozen backbone, then everything at
half the rate), on the shipped detection demo set, and compares test COCO
mAP with the same detector trained from random initialisation on the same
epoch budget.

    python examples/object_detection.py                        # full run (long on 2 cores)
    python examples/object_detection.py --epochs 1 --limit 40  # smoke run
"""

import argparse
import json
import os
import time

import keras_tl
from keras_tl.datasets.detection_demo import CLASS_NAMES, detection_demo_path
from keras_tl.reports import machine_info

# A plain run writes here; the README's numbers come from a run with
# --results benchmarks/results/object_detection.json
RESULTS = os.path.join("runs", "object_detection", "results.json")
BACKBONE = "mobilenet_v2_torch"
RUNS = ("two_stage", "from_scratch")


def limited_split(split, limit, folder):
    """The demo split `split`, or a COCO copy of its first `limit` images in
    `folder` (their annotations; the images folder linked, not copied).

    Example:
    >>> limited_split("test", None, "unused") == detection_demo_path("test")
    True
    """
    source = detection_demo_path(split)
    if not limit:
        return source
    with open(os.path.join(source, "instances.json"), encoding="utf-8") as file:
        coco = json.load(file)
    coco["images"] = coco["images"][:limit]
    kept = {image["id"] for image in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    target = os.path.join(folder, split)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "instances.json"), "w", encoding="utf-8") as file:
        json.dump(coco, file)
    link = os.path.join(target, "images")
    if not os.path.lexists(link):
        os.symlink(os.path.join(source, "images"), link)
    return target


def compare(head_epochs=5, finetune_epochs=5, limit=None, image_size=128,
            output="runs/object_detection", verbose=2, runs=RUNS, batch_size=8, seed=0):
    """Runs the configurations named in `runs` on the detection demo set;
    returns a dict of their test mAP@.5, mAP@[.5:.95] and times.

    Example:
    >>> compare(head_epochs=1, finetune_epochs=1, limit=40, verbose=0,
    ...         runs=("two_stage",))["two_stage"]["map_50"] >= 0  # doctest: +SKIP
    True
    """
    train = limited_split("train", limit, os.path.join(output, "data"))
    test = limited_split("test", limit, os.path.join(output, "data"))
    epochs = head_epochs + finetune_epochs
    stages = {
        "two_stage": keras_tl.get_task("object_detection").default_stages(
            head_epochs, finetune_epochs),
        # BatchNorm statistics must be learnt when nothing is pretrained; Adam
        # above 1e-4 blows a new RetinaNet head up (see default_stages)
        "from_scratch": [keras_tl.Stage("scratch", unfreeze="all", epochs=epochs,
                                        learning_rate=1e-4, warmup=0.1, schedule="cosine",
                                        train_batchnorm=True)],
    }
    results = {}
    for name in runs:
        start = time.time()
        result = keras_tl.finetune(
            train, BACKBONE, image_size=image_size, test_data=test,
            weights=None if name == "from_scratch" else "default", stages=stages[name],
            batch_size=batch_size, validation_split=0.1, seed=seed, verbose=verbose,
            patience=4, output_dir=os.path.join(output, name))
        seconds = time.time() - start
        test_metrics = result.metrics["test"]
        results[name] = dict(
            map_50=round(test_metrics["map_50"], 4), map=round(test_metrics["map"], 4),
            map_75=round(test_metrics["map_75"], 4),
            per_class_ap={k: round(v, 4) for k, v in test_metrics["per_class_ap"].items()},
            anchors={key: result.info.get(key)
                     for key in ("anchor_size", "aspect_ratios", "anchor_recall")},
            seconds=round(seconds, 1), output_dir=result.output_dir)
        print(f"== {name}: test mAP@.5 {test_metrics['map_50']:.4f}, "
              f"mAP@[.5:.95] {test_metrics['map']:.4f} ({seconds:.0f} s)", flush=True)
    results["setup"] = dict(
        backbone=BACKBONE, detector="RetinaNet (keras_tl.models.retinanet)",
        data="keras_tl.datasets.detection_demo (COCO layout, 4 classes)",
        class_names=list(CLASS_NAMES), train_images=result.info["num_train"],
        validation_images=result.info["num_validation"], test_images=result.info["num_test"],
        image_size=image_size, head_epochs=head_epochs, finetune_epochs=finetune_epochs,
        batch_size=batch_size, validation_split=0.1, patience=4, seed=seed,
        stages={name: [s.to_config() for s in stages[name]] for name in runs})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="sets both epoch counts")
    parser.add_argument("--limit", type=int, default=None, help="images per split (smoke runs)")
    parser.add_argument("--image-size", type=int, default=128, help="divisible by 32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--keep", action="store_true",
                        help="keep the --results file's runs that --runs leaves out (marked)")
    parser.add_argument("--note", default=None, help="a remark stored in the results' setup")
    parser.add_argument("--output", default="runs/object_detection")
    parser.add_argument("--results", default=RESULTS, help="where the results JSON goes")
    args = parser.parse_args()
    if args.epochs is not None:
        args.head_epochs = args.finetune_epochs = args.epochs
    start = time.time()
    results = compare(args.head_epochs, args.finetune_epochs, args.limit, args.image_size,
                      args.output, runs=args.runs, batch_size=args.batch_size)
    if args.keep and os.path.exists(args.results):
        with open(args.results) as f:
            earlier = json.load(f)
        for name in set(RUNS) - set(args.runs):
            if name in earlier:  # an older measurement, said so beside its numbers
                results[name] = dict(earlier[name], measured_earlier=earlier["setup"].get("note"))
                results["setup"]["stages"][name] = earlier["setup"]["stages"][name]
    results["setup"]["wall_seconds"] = round(time.time() - start, 1)
    if args.note:
        results["setup"]["note"] = args.note
    results["machine"] = dict(machine_info(), note="shared machine; times are indicative")
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    print("\nDetection demo, {train_images} training images, {test_images} test images, "
          "{image_size} px:".format(**results["setup"]))
    for name in args.runs:
        print(f"  {name:<13} test mAP@.5 {results[name]['map_50']:.4f}"
              f"  mAP@[.5:.95] {results[name]['map']:.4f}  ({results[name]['seconds']:.0f} s)")
    print(f"Total wall time {results['setup']['wall_seconds']:.0f} s; results in {args.results}")


if __name__ == "__main__":
    main()
