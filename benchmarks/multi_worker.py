"""The cost of training on several processes: one small fine-tuning job
(`keras-tl finetune`, JAX, one CPU device per process) on 1 process and on
2 processes over 127.0.0.1, with the same global batch; wall time and
images/s of each, written to a JSON file. On one 2-core machine expect no
speed-up: the second process competes for the same cores, and every step
adds a gradient all-reduce.

    python benchmarks/multi_worker.py [--images 240] [--out benchmarks/results/multi_worker.json]
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


def _job(images, output, processes, args):
    command = [sys.executable, "-m", "keras_tl", "finetune", images, "--backbone", "mobilenet_v2",
               "--weights", "none", "--image-size", str(args.size), "--batch-size",
               str(args.batch_size), "--head-epochs", str(args.epochs), "--finetune-epochs",
               str(args.epochs), "--cache-features", "off", "--patience", "0", "--verbose", "0",
               "--output", output]
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
    trained = run["info"]["num_train"] * 2 * args.epochs  # two stages
    return dict(processes=processes, wall_seconds=round(wall, 1), trained_images=trained,
                images_per_second=round(trained / wall, 1),
                validation_accuracy=metrics["validation"]["accuracy"],
                recorded_num_processes=run["num_processes"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240, help="synthetic images in all")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage")
    parser.add_argument("--out", default="benchmarks/results/multi_worker.json")
    args = parser.parse_args()
    from tests.helpers import write_image_folder  # the same synthetic colour images as tests

    work = tempfile.mkdtemp(prefix="multi_worker_benchmark-")
    images = str(write_image_folder(os.path.join(work, "images"), per_class=args.images // 3,
                                    size=args.size))
    rows = [_job(images, os.path.join(work, f"run{n}"), n, args) for n in (1, 2)]
    one, two = rows
    steps = -(-one["trained_images"] // args.batch_size)
    result = dict(
        job=dict(images=args.images, image_size=args.size, backbone="mobilenet_v2 (random init)",
                 batch_size=args.batch_size, epochs_per_stage=args.epochs, stages=2,
                 backend="jax", devices_per_process=1),
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
