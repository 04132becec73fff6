"""The cost of training on several processes: the demo job (`keras-tl
finetune` on the shipped Fashion-MNIST sample written as a PNG class folder,
the default backbone and stages at 96 px, JAX, one CPU device per process)
on 1 process and on 2 processes over 127.0.0.1, with the same global batch;
wall time, images/s and test accuracy of each, written to a JSON file. On
one 2-core machine expect no speed-up: the second process competes for the
same cores, and every step adds a gradient all-reduce.

    python benchmarks/multi_worker.py [--out benchmarks/results/multi_worker.json]
    python benchmarks/multi_worker.py --job tiny   # 240 synthetic images, random init
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from keras_tl.reports import machine_info  # noqa: E402


def _free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def _fashion_folders(root):
    """The demo's data as `root/train/<class>/<i>.png` and `root/test/...`."""
    from PIL import Image

    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample

    train, test, names = load_fashion_mnist_sample()
    for split, (images, labels) in (("train", train), ("test", test)):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = os.path.join(root, split, names[label])
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(image).save(os.path.join(folder, f"{i:04d}.png"))
    return os.path.join(root, "train"), os.path.join(root, "test")


def _command(data, output, args):
    if args.job == "demo":  # the demo's settings (examples/fashion_mnist_demo.py)
        train, test = data
        return [train, "--test-data", test, "--image-size", "96", "--batch-size", "32",
                "--head-epochs", "3", "--finetune-epochs", "5", "--patience", "3",
                "--validation-split", "0.1", "--seed", "0", "--verbose", "0", "--output", output]
    return [data, "--backbone", "mobilenet_v2", "--weights", "none", "--image-size",
            str(args.size), "--batch-size", str(args.batch_size), "--head-epochs",
            str(args.epochs), "--finetune-epochs", str(args.epochs), "--cache-features", "off",
            "--patience", "0", "--verbose", "0", "--output", output]


def _job(data, output, processes, args):
    command = [sys.executable, "-m", "keras_tl", "finetune"] + _command(data, output, args)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS="--xla_force_host_platform_device_count=1", TF_CPP_MIN_LOG_LEVEL="3")
    port = _free_port()
    started = time.perf_counter()
    if processes == 1:
        jobs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)]
    else:
        command = command + ["--distribute", "multi_worker"]
        jobs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, env=dict(
            env, KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes), KERAS_DISTRIBUTION_PROCESS_ID=str(i)))
            for i in range(processes)]
    codes = [job.wait() for job in jobs]
    wall = time.perf_counter() - started
    assert codes == [0] * processes, codes
    with open(os.path.join(output, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    epochs = sum(len(history["loss"]) for history in metrics["histories"].values())
    trained = run["info"]["num_train"] * epochs
    return dict(processes=processes, wall_seconds=round(wall, 1), epochs_run=epochs,
                trained_images=trained, images_per_second=round(trained / wall, 1),
                validation_accuracy=round(metrics["validation"]["accuracy"], 4),
                test_accuracy=round(metrics.get("test", {}).get("accuracy", float("nan")), 4),
                recorded_num_processes=run["num_processes"],
                input_sharding=run.get("input_sharding"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=("demo", "tiny"), default="demo")
    parser.add_argument("--images", type=int, default=240, help="tiny: synthetic images in all")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage")
    parser.add_argument("--out", default="benchmarks/results/multi_worker.json")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="multi_worker_benchmark-")
    if args.job == "demo":
        data = _fashion_folders(os.path.join(work, "fashion"))
        job = dict(name="demo", data="Fashion-MNIST sample (1000 train PNGs, 1000 test)",
                   image_size=96, backbone="default (mobilenet_v2_torch, ImageNet)",
                   batch_size=32, head_epochs=3, finetune_epochs=5, patience=3)
        args.batch_size = 32
    else:
        from tests.helpers import write_image_folder  # the same synthetic images as tests

        data = str(write_image_folder(os.path.join(work, "images"),
                                      per_class=args.images // 3, size=args.size))
        job = dict(name="tiny", images=args.images, image_size=args.size,
                   backbone="mobilenet_v2 (random init)", batch_size=args.batch_size,
                   epochs_per_stage=args.epochs, stages=2)
    rows = [_job(data, os.path.join(work, f"run{n}"), n, args) for n in (1, 2)]
    one, two = rows
    steps = -(-one["trained_images"] // args.batch_size)
    result = dict(
        job=dict(job, backend="jax", devices_per_process=1),
        runs=rows,
        slowdown=round(two["wall_seconds"] / one["wall_seconds"], 2),
        extra_seconds_per_step=round((two["wall_seconds"] - one["wall_seconds"]) / steps, 3),
        note="wall time of the whole command (start-up, compile, training, saving); the extra "
             "seconds per step bound the communication cost from above, on 2 shared cores; "
             "'machine' describes the parent process (the jobs run under JAX)",
        machine=machine_info())
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
