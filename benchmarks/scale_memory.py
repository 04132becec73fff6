"""Memory and speed as a folder of images grows: synthetic JPEG folders of
2k, 10k and 40k photos (320x240), each read by a fresh process that decodes
the folder once through the streaming pipeline, then fine-tunes (one head
epoch on cached backbone features, one epoch with the whole backbone
unfrozen); peak RSS, images/s and wall time per stage, and today's
single-loop decoding (`read_image` file by file, what `read_class_folders`
did) measured in the same process on the same cores, for the ratio.

    python benchmarks/scale_memory.py [--sizes 2000 10000 40000] [--out benchmarks/results/scale_memory.json]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CLASSES = ("cloud", "grass", "sand", "sea")
COLOURS = ((200, 200, 210), (60, 150, 50), (210, 180, 120), (30, 80, 170))
PHOTO_SIZE = (320, 240)


def write_folder(root, size, seed=0):
    """`size` JPEGs of PHOTO_SIZE in `root/<class>/`, class colour plus smooth
    noise (a JPEG of ~10-20 kB, like a photo at that size); existing files
    are kept, so the folders grow from one another."""
    from PIL import Image

    per_class = size // len(CLASSES)
    rng = np.random.default_rng(seed)
    for name, colour in zip(CLASSES, COLOURS):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            path = os.path.join(folder, f"{i:06d}.jpg")
            if os.path.exists(path):
                continue
            noise = rng.normal(0, 40, (30, 40, 3))
            small = Image.fromarray(np.clip(np.asarray(colour) + noise, 0, 255).astype("uint8"))
            small.resize(PHOTO_SIZE, Image.BILINEAR).save(path, quality=90)
    return root


def folder_of(root, size):
    """A folder of the first `size` photos of the pool, as hard links."""
    folder = os.path.join(root, str(size))
    if os.path.isdir(folder):
        return folder
    for name in CLASSES:
        os.makedirs(os.path.join(folder, name))
        for i in range(size // len(CLASSES)):
            file = f"{i:06d}.jpg"
            os.link(os.path.join(root, "pool", name, file), os.path.join(folder, name, file))
    return folder


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def measure(folder, args):
    """One size, in this (fresh) process: a dict of the measurements."""
    import keras

    import keras_tl
    from keras_tl.data.image_sources import read_image_source
    from keras_tl.data.images import read_image

    size = (args.image_size, args.image_size)
    row = dict(images=sum(len(files) for _, _, files in os.walk(folder)),
               rss_mb_at_start=round(peak_rss_mb(), 1))
    start = time.perf_counter()
    source = read_image_source(folder, size)
    row["listing_seconds"] = round(time.perf_counter() - start, 2)
    # Steady-state rates: from the first batch on (tracing and the
    # pipeline's start are timed apart), and after read_image's one trace.
    start = time.perf_counter()
    batches = iter(source.dataset(64))
    decoded = len(next(batches)[1])
    first = time.perf_counter()
    decoded_after_first = sum(len(y) for _, y in batches)
    seconds = time.perf_counter() - first
    row["streamed_decoding"] = dict(
        images=decoded + decoded_after_first, start_seconds=round(first - start, 2),
        seconds=round(seconds, 2), images_per_second=round(decoded_after_first / seconds, 1))
    # Today's path: one Python loop of read_image, stacked into one array.
    paths = source.paths[np.linspace(0, len(source) - 1, args.old_sample).astype(int)]
    read_image(paths[0], size)
    start = time.perf_counter()
    stacked = np.stack([read_image(path, size) for path in paths])
    seconds = time.perf_counter() - start
    row["single_loop_decoding"] = dict(images=len(stacked), seconds=round(seconds, 2),
                                       images_per_second=round(len(stacked) / seconds, 1))
    row["decoding_speedup"] = round(row["streamed_decoding"]["images_per_second"]
                                    / row["single_loop_decoding"]["images_per_second"], 2)
    del stacked
    row["rss_mb_after_decoding"] = round(peak_rss_mb(), 1)

    class Timeline(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_train_begin(self, logs=None):
            self.events.append(("begin", time.perf_counter(), peak_rss_mb()))

        def on_train_end(self, logs=None):
            self.events.append(("end", time.perf_counter(), peak_rss_mb()))

    timeline = Timeline()
    start = time.perf_counter()
    result = keras_tl.finetune(
        folder, args.backbone, image_size=args.image_size, batch_size=args.batch_size,
        validation_split=0.1, patience=0, verbose=0, callbacks=[timeline],
        stages=[keras_tl.Stage("head", epochs=1, learning_rate=1e-3, cached_epochs=1),
                keras_tl.Stage("finetune", unfreeze="all", epochs=1, learning_rate=1e-4)],
        output_dir=os.path.join(args.runs, str(len(source))))
    end = time.perf_counter()
    (_, head_begin, rss_caching), (_, head_end, rss_head), (_, ft_begin, _), \
        (_, ft_end, rss_ft) = timeline.events
    train = result.info["num_train"]
    row.update(
        num_train=train, num_validation=result.info["num_validation"],
        cached_stages=result.info.get("cached_stages"),
        stages=dict(
            prepare_and_cache_seconds=round(head_begin - start, 1),
            head_epoch=dict(seconds=round(head_end - head_begin, 2),
                            images_per_second=round(train / (head_end - head_begin), 1)),
            finetune_epoch=dict(seconds=round(ft_end - ft_begin, 1),
                                images_per_second=round(train / (ft_end - ft_begin), 1)),
            final_evaluation_seconds=round(end - ft_end, 1),
            total_seconds=round(end - start, 1)),
        rss_mb=dict(after_caching=round(rss_caching, 1), after_head=round(rss_head, 1),
                    after_finetune=round(rss_ft, 1)),
        peak_rss_mb=round(peak_rss_mb(), 1), load_average=[round(v, 1) for v in os.getloadavg()],
        validation_accuracy=round(result.metrics["validation"]["accuracy"], 4))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    parser.add_argument("--backbone", default="mobilenet_v2_torch")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--old-sample", type=int, default=1000,
                        help="images decoded by the single loop, for its images/s")
    parser.add_argument("--data", default="/tmp/keras_tl_scale", help="where the photos go")
    parser.add_argument("--runs", default="runs/scale_memory")
    parser.add_argument("--out", default="benchmarks/results/scale_memory.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one size, in a fresh process
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args)), flush=True)
        return
    from _results import write_results  # benchmarks/ is the script's folder

    start = time.perf_counter()
    write_folder(os.path.join(args.data, "pool"), max(args.sizes))
    print(f"photos written in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for size in sorted(args.sizes):
        command = [sys.executable, __file__, "--child", folder_of(args.data, size)]
        command += [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                    if k not in ("sizes", "child")]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.split("RESULT ", 1)[1]))
        print(json.dumps(rows[-1]), flush=True)
    smallest = rows[0]
    summary = dict(
        peak_rss_mb={row["images"]: row["peak_rss_mb"] for row in rows},
        peak_rss_ratio_to_smallest={row["images"]: round(row["peak_rss_mb"]
                                                         / smallest["peak_rss_mb"], 3)
                                    for row in rows},
        decoding_speedup={row["images"]: row["decoding_speedup"] for row in rows})
    settings = dict(backbone=args.backbone, image_size=args.image_size,
                    batch_size=args.batch_size, photo_size=list(PHOTO_SIZE),
                    classes=len(CLASSES), validation_split=0.1,
                    stages="head: 1 epoch on cached features; finetune: unfreeze='all', 1 epoch",
                    cache_memory=os.environ.get("KERAS_TL_CACHE_MEMORY", "default"),
                    single_loop_sample=args.old_sample)
    write_results(args.out, summary, settings=settings, sizes=rows)


if __name__ == "__main__":
    main()
