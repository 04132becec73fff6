"""Serving speed of one export, per format: latency and throughput in
process and over `keras-tl serve`'s TF Serving REST API.

Trains a small Fashion-MNIST classifier (the default backbone, one short
head stage at `--image-size`) or loads `--run`, exports it with
`keras_tl.export` (SavedModel, ONNX, LiteRT float32 and int8) into a
temporary folder, then for each format measures:

- in process, through the loader `keras-tl predict` uses
  (`load_export(...).outputs`): single-image latency (p50, p99 over
  `--requests` requests after `--warmup` untimed ones) and throughput in
  images/s at batch 1 and batch 32;
- over HTTP, `keras-tl serve --port 0` in a subprocess (only the served
  model in it) and client threads here POSTing TF Serving `:predict` requests
  (`{"instances": [one 96x96x3 float image]}` to `serving_default`, a new
  connection per request): the first request's latency, then latency
  p50/p99 and requests/s with 1 and 4 concurrent clients (LiteRT float32 is
  the file `keras-tl serve --format litert` serves), and the warm-up
  requests the server says it replayed;
- for the SavedModel, the first request's latency in a fresh process
  after loading the version, without and with replaying its
  `assets.extra/tf_serving_warmup_requests` first (what TF Serving does on
  load, and `keras-tl serve` too: `keras_tl.serving.warmup.replay_warmup`).

Ratios against the SavedModel are reported beside the numbers: the
machine is shared, so they carry better than the absolute times. Writes
`benchmarks/results/serving.json`.

    python benchmarks/serving.py [--run runs/fashion_mnist_demo/two_stage] [--requests 200]
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_results  # noqa: E402

OUT = "benchmarks/results/serving.json"
FORMATS = {  # name in the results -> the file or folder inside the version folder
    "saved_model": None, "onnx": "model.onnx", "litert_float32": "model_float32.tflite",
    "litert_int8": "model_int8.tflite"}
SERVED = {"saved_model": "saved_model", "onnx": "onnx",  # result name -> keras-tl serve --format
          "litert_float32": "litert"}


def summarize(seconds):
    """Latency percentiles of per-request times in seconds, in milliseconds.

    Example:
    >>> summarize([0.001 * i for i in range(1, 101)])["p50_ms"]
    50.5
    """
    ms = np.asarray(seconds, dtype="float64") * 1000.0
    if ms.size == 0:
        raise ValueError("no timings to summarize")
    return dict(count=int(ms.size), p50_ms=_round(np.percentile(ms, 50)),
                p90_ms=_round(np.percentile(ms, 90)), p99_ms=_round(np.percentile(ms, 99)),
                mean_ms=_round(ms.mean()), min_ms=_round(ms.min()), max_ms=_round(ms.max()))


def ratios(results, key, baseline="saved_model"):
    """`{format: results[format][key] / results[baseline][key]}` for every
    format holding `key` (a path of nested keys, "a.b").

    Example:
    >>> ratios({"saved_model": {"t": {"p50_ms": 2.0}}, "onnx": {"t": {"p50_ms": 1.0}}}, "t.p50_ms")
    {'onnx': 0.5}
    """
    def get(entry):
        for part in key.split("."):
            entry = entry.get(part) if isinstance(entry, dict) else None
        return entry

    base = get(results.get(baseline, {}))
    if not base:
        return {}
    return {name: _round(get(entry) / base, 3) for name, entry in results.items()
            if name != baseline and get(entry) is not None}


def _round(value, digits=2):
    return round(float(value), digits)


def time_calls(call, count, warmup):
    """Per-call seconds of `count` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def in_process(loaded, images, args):
    """Latency at batch 1 and throughput at each batch size, through `LoadedExport.outputs`."""
    single = images[:1]
    latency = time_calls(lambda: loaded.outputs(single), args.requests, args.warmup)
    report = dict(latency_batch_1=summarize(latency),
                  images_per_s_batch_1=_round(len(latency) / sum(latency), 1))
    for size in args.batch_sizes:
        if size == 1:
            continue
        batch = images[:size]
        times = time_calls(lambda: loaded.outputs(batch), args.batches, 2)
        report[f"images_per_s_batch_{size}"] = _round(size * len(times) / sum(times), 1)
        report[f"latency_batch_{size}"] = summarize(times)
    return report


def http_client(port, path, body, count, times, errors):
    """POSTs `body` `count` times (a new connection each, as a simple client does)."""
    headers = {"Content-Type": "application/json"}
    for _ in range(count):
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append(payload[:200].decode("utf-8", "replace"))
        finally:
            connection.close()
        times.append(time.perf_counter() - start)


def start_server(version_dir, format):
    """`keras-tl serve VERSION --port 0 --format FORMAT --name fashion` in a
    subprocess; returns `(process, port, warm-up requests it replayed)`
    once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", "serve", version_dir, "--port", "0",
         "--format", format, "--name", "fashion"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ))
    port = None
    for line in process.stdout:
        found = re.search(r"predict\s+POST http://127\.0\.0\.1:(\d+)/", line)
        port = int(found.group(1)) if found else port
        warmup = re.search(r"warm-up\s+(\d+|none)", line)
        if port is not None and warmup:
            return process, port, int(warmup.group(1)) if warmup.group(1) != "none" else 0
        if port is not None and "Ctrl+C" in line:  # a keras-tl serve printing no warm-up line
            return process, port, None
    process.wait()
    raise RuntimeError(f"keras-tl serve --format {format} exited ({process.returncode}) "
                       "before listening")


def over_http(version_dir, format, body, args):
    """`keras-tl serve` in its own process, clients in this one: p50/p99
    and requests/s per client count."""
    start = time.perf_counter()
    process, port, replayed = start_server(version_dir, format)
    report = dict(server_start_s=_round(time.perf_counter() - start, 1),
                  server_warmup_requests=replayed)
    path = "/v1/models/fashion:predict"
    try:
        errors, first = [], []
        http_client(port, path, body, 1, first, errors)  # the server's first request
        report["first_request_ms"] = _round(first[0] * 1000)
        http_client(port, path, body, args.warmup, [], errors)  # untimed warm-up
        for clients in args.clients:
            per_client = max(1, args.http_requests // clients)
            times, threads = [], []
            start = time.perf_counter()
            for _ in range(clients):
                threads.append(threading.Thread(
                    target=http_client, args=(port, path, body, per_client, times, errors)))
                threads[-1].start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            report[f"clients_{clients}"] = dict(
                summarize(times), requests_per_s=_round(len(times) / wall, 1),
                wall_s=_round(wall), over_200ms=sum(t > 0.2 for t in times))
        if errors:
            report["errors"] = errors[:3]
            report["error_count"] = len(errors)
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
    return report


def first_request(version_dir, images_file, warmup):
    """In this (fresh) process: load the SavedModel as `keras-tl serve`
    does, replay the warm-up file if `warmup` (as `keras-tl serve` does),
    then time one batch-1 request. Prints a JSON line."""
    from keras_tl.serving.models import SavedModelSignatures
    from keras_tl.serving.warmup import replay_warmup

    start = time.perf_counter()
    served = SavedModelSignatures(version_dir)
    load_s = time.perf_counter() - start
    replayed, replay_s = 0, 0.0
    if warmup:
        start = time.perf_counter()
        replayed = replay_warmup(served)
        replay_s = time.perf_counter() - start
    images = np.load(images_file)
    times = []
    for _ in range(3):  # the first request, then two more for the steady state
        start = time.perf_counter()
        served.run("serving_default", {"images": images[:1]})
        times.append(time.perf_counter() - start)
    print(json.dumps(dict(load_s=_round(load_s, 3), warmup_requests=replayed,
                          warmup_replay_s=_round(replay_s, 3),
                          first_request_ms=_round(times[0] * 1000),
                          next_requests_ms=[_round(t * 1000) for t in times[1:]])))


def first_requests(version_dir, images, args):
    """`first_request` in fresh subprocesses, alternating without and with the warm-up file."""
    if not os.path.exists(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")):
        return {"skipped": "the export has no assets.extra/tf_serving_warmup_requests"}
    runs = {"without_warmup": [], "with_warmup": []}
    with tempfile.TemporaryDirectory() as folder:
        images_file = os.path.join(folder, "images.npy")
        np.save(images_file, images[:1])
        for _ in range(args.first_request_repeats):
            for name, flag in (("without_warmup", []), ("with_warmup", ["--with-warmup"])):
                output = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--first-request", version_dir,
                     "--images-file", images_file] + flag,
                    capture_output=True, text=True, check=True, env=dict(os.environ))
                runs[name].append(json.loads(output.stdout.strip().splitlines()[-1]))
    report = {name: dict(first_request_ms=[r["first_request_ms"] for r in found],
                         next_requests_ms=[r["next_requests_ms"] for r in found],
                         load_s=[r["load_s"] for r in found],
                         warmup_requests=found[0]["warmup_requests"],
                         warmup_replay_s=[r["warmup_replay_s"] for r in found])
              for name, found in runs.items()}
    without = np.median(report["without_warmup"]["first_request_ms"])
    with_ = np.median(report["with_warmup"]["first_request_ms"])
    report["first_request_ratio_without_over_with"] = _round(without / with_, 2)
    return report


def trained_run(args, folder):
    """`(result, seconds)`: `--run` loaded, or a short head stage trained on
    the shipped Fashion-MNIST sample."""
    import keras_tl
    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample

    start = time.perf_counter()
    if args.run and os.path.exists(args.run):
        return keras_tl.FinetuneResult.load(args.run), 0.0, args.run
    (x, y), _, names = load_fashion_mnist_sample(args.train_per_class, 10)
    result = keras_tl.finetune(
        (x, y), args.backbone, image_size=args.image_size, class_names=names, batch_size=32,
        validation_split=0.1, seed=0, verbose=0, patience=0,
        stages=[keras_tl.Stage("head", epochs=args.epochs)],
        output_dir=os.path.join(folder, "run"))
    return result, time.perf_counter() - start, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/fashion_mnist_demo/two_stage",
                        help="a finished image-classification run to export, if it exists")
    parser.add_argument("--backbone", default=None, help="default: the task's default")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--train-per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200,
                        help="timed single-image requests per format, in process")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--batches", type=int, default=10, help="timed batches per size > 1")
    parser.add_argument("--http-requests", type=int, default=200,
                        help="timed HTTP requests per format and client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--first-request-repeats", type=int, default=1)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--first-request", help=argparse.SUPPRESS)  # the subprocess's mode
    parser.add_argument("--images-file", help=argparse.SUPPRESS)
    parser.add_argument("--with-warmup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_request:
        return first_request(args.first_request, args.images_file, args.with_warmup)

    import keras_tl
    from keras_tl.datasets.fashion_mnist import load_fashion_mnist_sample
    from keras_tl.exporters.predict import load_export

    wall_start = time.perf_counter()
    args.backbone = args.backbone or keras_tl.tasks.get_task("image_classification").default_backbone
    with tempfile.TemporaryDirectory(prefix="keras_tl_serving_bench_") as folder:
        result, train_s, run = trained_run(args, folder)
        start = time.perf_counter()
        # int8 written whatever its agreement with the Keras model (a short run may miss the
        # gate): speed is measured here, quality in export_fidelity.json
        exported = keras_tl.export(result, os.path.join(folder, "saved_models", "fashion"),
                                   int8_threshold=0.0)
        export_s = time.perf_counter() - start
        version_dir = exported.path
        info = result.info
        _, (x_test, _), _ = load_fashion_mnist_sample(10, 10)  # 100 test images
        reps = int(np.ceil(max(args.batch_sizes) / len(x_test)))
        images = keras_tl.tasks.get_task("image_classification").prepare_inputs(
            np.concatenate([x_test] * reps), info)

        formats, sizes = {}, {}
        for name, file in FORMATS.items():
            path = version_dir if file is None else os.path.join(version_dir, file)
            if not os.path.exists(path):
                continue
            print(f"in process: {name}", flush=True)
            loaded = load_export(path)
            formats[name] = dict(in_process=in_process(loaded, images, args))
            sizes[name] = exported.verification.get(
                name if name != "saved_model" else "saved_model/serving_default", {}).get("bytes")
            del loaded

        body = json.dumps({"instances": images[:1].tolist()}).encode("utf-8")
        for name in SERVED:
            if name not in formats:
                continue
            print(f"over HTTP: {name}", flush=True)
            formats[name]["http"] = over_http(version_dir, SERVED[name], body, args)

        print("first request, fresh processes", flush=True)
        first = first_requests(version_dir, images, args)

    comparisons = {
        "in_process_p50": ratios(formats, "in_process.latency_batch_1.p50_ms"),
        "in_process_p99": ratios(formats, "in_process.latency_batch_1.p99_ms"),
        **{f"images_per_s_batch_{size}": ratios(formats, f"in_process.images_per_s_batch_{size}")
           for size in args.batch_sizes},
        **{f"http_p50_clients_{c}": ratios(formats, f"http.clients_{c}.p50_ms")
           for c in args.clients},
        **{f"http_requests_per_s_clients_{c}": ratios(formats, f"http.clients_{c}.requests_per_s")
           for c in args.clients}}
    settings = dict(
        run=run, backbone=info["backbone"], weights=info.get("weights"),
        input_size=info["input_size"], task=info["task"],
        trained=None if run else dict(train_per_class=args.train_per_class,
                                      epochs=args.epochs, stage="head", seconds=_round(train_s, 1)),
        export_seconds=_round(export_s, 1),
        int8_top1_agreement=exported.verification.get("litert_int8", {}).get("argmax_agreement"),
        batch_sizes=args.batch_sizes,
        requests=args.requests, warmup_requests=args.warmup, batches_per_size=args.batches,
        http_requests=args.http_requests, clients=args.clients,
        http_request=("POST /v1/models/fashion:predict, {\"instances\": [one "
                      f"{'x'.join(map(str, info['input_size']))}x3 float image]}}, "
                      f"{len(body)} bytes, a new connection per request; keras-tl serve in its "
                      "own process, client threads in the benchmark's"),
        first_request_repeats=args.first_request_repeats, model_bytes=sizes)
    summary = {name: dict(
        p50_ms=entry["in_process"]["latency_batch_1"]["p50_ms"],
        p99_ms=entry["in_process"]["latency_batch_1"]["p99_ms"],
        **{f"images_per_s_batch_{s}": entry["in_process"].get(f"images_per_s_batch_{s}")
           for s in args.batch_sizes},
        **({f"http_{c}_clients": {k: entry["http"][f"clients_{c}"][k]
                                  for k in ("p50_ms", "p99_ms", "requests_per_s", "over_200ms")}
            for c in args.clients} if "http" in entry else {}),
        **({"http_first_request_ms": entry["http"]["first_request_ms"],
            "http_server_warmup_requests": entry["http"]["server_warmup_requests"]}
           if "http" in entry else {}))
        for name, entry in formats.items()}
    summary["ratios_to_saved_model"] = comparisons
    if "with_warmup" in first:
        summary["first_request_ms"] = {k: first[k]["first_request_ms"]
                                       for k in ("without_warmup", "with_warmup")}
    summary["wall_seconds"] = _round(time.perf_counter() - wall_start, 1)
    write_results(args.out, summary, settings=settings, formats=formats, first_request=first)


if __name__ == "__main__":
    main()
