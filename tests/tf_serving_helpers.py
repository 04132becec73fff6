"""Checks of the TF Serving files an export writes, shared by every task's
export tests: `models.config` and `batching_parameters.txt` parsed with
TF Serving's protos, the warm-up file parsed as `PredictionLog` records and
replayed in a TensorFlow-only process (tests/serving_check.py --warmup) to
the SavedModel's outputs on the export's verification inputs."""

import base64
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVING_CHECK = os.path.join(ROOT, "tests", "serving_check.py")


def batching_parameters_message():
    """TF Serving's `BatchingParameters` message class.

    tensorflow-serving-api does not ship it (it lives in
    tensorflow_serving/servables/tensorflow/session_bundle_config.proto), so
    it is declared here with that file's field names, numbers and types."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="keras_tl_tests/session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    kinds = descriptor_pb2.FieldDescriptorProto
    for name, number, type_name in (("max_batch_size", 1, "Int64Value"),
                                    ("batch_timeout_micros", 2, "Int64Value"),
                                    ("max_enqueued_batches", 3, "Int64Value"),
                                    ("num_batch_threads", 4, "Int64Value"),
                                    ("thread_pool_name", 5, "StringValue")):
        message.field.add(name=name, number=number, type=kinds.TYPE_MESSAGE,
                          type_name=f".google.protobuf.{type_name}", label=kinds.LABEL_OPTIONAL)
    message.field.add(name="allowed_batch_sizes", number=6, type=kinds.TYPE_INT64,
                      label=kinds.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=kinds.TYPE_BOOL,
                      label=kinds.LABEL_OPTIONAL)
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def parse_server_configs(base_dir):
    """`(ModelServerConfig, BatchingParameters)` parsed from the text protos
    an export writes beside its versions."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(base_dir, "models.config"), encoding="utf-8") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    with open(os.path.join(base_dir, "batching_parameters.txt"), encoding="utf-8") as f:
        batching = text_format.Parse(f.read(), batching_parameters_message()())
    return config, batching


def assert_server_configs(exported):
    """models.config names the export's model and its absolute base path."""
    base = os.path.dirname(exported.path)
    config, batching = parse_server_configs(base)
    (model,) = config.model_config_list.config
    assert model.name == os.path.basename(base)
    assert model.base_path == os.path.abspath(base) and os.path.isabs(model.base_path)
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1
    assert exported.files["tf_serving_config"] == os.path.join(base, "models.config")
    assert batching.num_batch_threads.value >= 1 and batching.batch_timeout_micros.value == 0
    return config, batching


def replay_warmup(version_dir, text_ops=False):
    """tests/serving_check.py --warmup's report on a version folder."""
    args = [sys.executable, SERVING_CHECK, "--warmup", version_dir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(args + (["--text-ops"] if text_ops else []), capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_warmup_replays(exported, spec, text_ops=False, atol=1e-5):
    """Every signature the spec feeds has a warm-up request at batch 1 and
    at its largest batch, whose inputs are the verification inputs' first
    rows and whose outputs, replayed without keras or keras_tl, are the
    SavedModel's own on the verification inputs. Returns the report."""
    from keras_tl.exporters import tf_serving
    from keras_tl.exporters.saved_model import SavedModelExporter

    assert exported.files["tf_serving_warmup"] == os.path.join(
        exported.path, "assets.extra", "tf_serving_warmup_requests")
    report = replay_warmup(exported.path, text_ops=text_ops)
    assert report["keras_modules_loaded"] == []
    inputs = spec.verification_inputs
    expected = {}
    for runner in SavedModelExporter().runners({"saved_model": exported.path}, spec).values():
        outputs = runner.run(inputs)
        if outputs is not None:
            expected[runner.graph.name] = (runner.graph.feed_for(inputs), outputs)
    assert "serving_default" in expected, expected
    _, batching = parse_server_configs(os.path.dirname(exported.path))
    largest = min(len(inputs), tf_serving.WARMUP_BATCH_SIZE)
    assert largest <= batching.max_batch_size.value  # else TF Serving refuses the version
    seen = []
    for record in report["records"]:
        assert record["log_type"] == "predict_log"
        assert record["model_name"] == os.path.basename(os.path.dirname(exported.path))
        feed, outputs = expected[record["signature_name"]]
        (batch,) = {len(value) for value in record["inputs"].values()}
        seen.append((record["signature_name"], batch))
        assert set(record["inputs"]) == set(feed)
        for key, value in record["inputs"].items():
            _assert_same(value, feed[key][:batch], atol=0)
        assert set(record["outputs"]) == set(outputs)
        for key, value in record["outputs"].items():
            _assert_same(value, outputs[key][:batch], atol=atol)
    assert seen == [(name, size) for name in expected for size in sorted({1, largest})]
    return report


def _assert_same(listed, expected, atol):
    """`listed` (serving_check's JSON form) equals the array `expected`."""
    expected = np.asarray(expected)
    if expected.dtype.kind in ("O", "S", "U"):
        decoded = np.vectorize(base64.b64decode, otypes=[object])(np.asarray(listed, object))
        as_bytes = np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(),
                                otypes=[object])(expected)
        assert decoded.tolist() == as_bytes.tolist()
    else:
        np.testing.assert_allclose(np.asarray(listed, expected.dtype), expected, atol=atol,
                                   rtol=0)


def spec_of(run):
    """The `ExportSpec` `keras_tl.export` builds for `run` (same model,
    info, class names and verification inputs)."""
    from keras_tl.exporters import pipeline

    model, task, class_names, info, _, sample = pipeline._unpack(run, None, None)
    return task.export_spec(model, info, class_names, sample)


def assert_export_for_tf_serving(exported, run, atol=1e-4):
    """The configs, the warm-up replay and the model card of `run`'s export."""
    assert_server_configs(exported)
    spec = spec_of(run)
    assert_warmup_replays(exported, spec, text_ops=spec.modality == "text", atol=atol)
    with open(exported.files["model_card"], encoding="utf-8") as f:
        card = f.read()
    assert f"{spec.task} ({spec.modality} inputs); {len(spec.class_names)} classes" in card
    for signature in spec.signatures:
        assert f"- `{signature.name}`: " in card
