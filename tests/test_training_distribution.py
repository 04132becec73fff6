"""Data parallelism on two virtual CPU devices, each backend in its own
process (device counts are fixed when the backend starts)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN = """
import json, sys
import numpy as np
import keras_tl
from tests.helpers import colour_arrays, tiny_backbone

x, y, names = colour_arrays(per_class=12)
stages = [keras_tl.Stage("head", epochs=2, learning_rate=1e-2),
          keras_tl.Stage("ft", unfreeze="all", epochs=1, learning_rate=1e-3)]
result = keras_tl.finetune((x, y), BACKBONE, class_names=names, batch_size=8,
                           verbose=0, patience=0, stages=stages, distribute="data_parallel",
                           output_dir=sys.argv[1], **OPTIONS)
print("CHECK", json.dumps(dict(
    placement=PLACEMENT,
    loss=result.histories["ft"]["loss"][-1],
    accuracy=result.metrics["validation"]["accuracy"])))
"""


def _run(backend, setup, placement, tmp_path, extra_env=None, backbone="tiny_backbone()",
         options="{}"):
    script = textwrap.dedent(setup) + RUN.replace("PLACEMENT", placement).replace(
        "BACKBONE", backbone).replace("OPTIONS", options)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
               **(extra_env or {}))
    env.pop("TF_CONFIG", None)
    run = str(tmp_path / "run")
    done = subprocess.run([sys.executable, "-c", script, run], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [l for l in done.stdout.splitlines() if l.startswith("CHECK ")][-1]
    config = json.load(open(os.path.join(run, "run.json")))["config"]
    return json.loads(line[len("CHECK "):]), config


@pytest.mark.slow  # a training run in a subprocess on two virtual devices
def test_jax_data_parallel_on_two_cpu_devices(tmp_path):
    placement = ("[len(v.value.sharding.device_set) for v in "
                 "(result.model.get_layer('probabilities').kernel, "
                 "result.model.get_layer('backbone').get_layer('block1_conv').kernel)]")
    setup = """
    import keras
    keras.distribution.set_distribution(keras.distribution.DataParallel())  # before the backbone
    """
    check, config = _run("jax", setup, placement, tmp_path,
                         {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert config["distribution"] == {"strategy": "DataParallel", "device_count": 2}
    assert check["placement"] == [2, 2], "head and backbone variables live on both devices"
    assert check["loss"] == check["loss"]  # finite, not NaN


@pytest.mark.slow  # a training run in a subprocess on two virtual devices
def test_tensorflow_mirrored_strategy_on_two_logical_cpus(tmp_path):
    setup = """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    """
    placement = ("type(result.model.get_layer('backbone').get_layer('Conv1').kernel.value)"
                 ".__name__")
    check, config = _run("tensorflow", setup, placement, tmp_path, backbone='"mobilenet_v2"',
                         options='dict(weights=None, image_size=32)')
    assert config["distribution"] == {"strategy": "MirroredStrategy", "device_count": 2}
    assert check["placement"] == "MirroredVariable"  # built in the strategy's scope
    assert check["loss"] == check["loss"]


def test_jax_backbone_built_before_the_distribution_is_named(tmp_path):
    with pytest.raises(AssertionError, match="created outside the DataParallel distribution"):
        _run("jax", "", "None", tmp_path, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})


def test_tensorflow_backbone_built_outside_the_scope_is_named(tmp_path):
    setup = """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    """
    with pytest.raises(AssertionError, match="created outside the MirroredStrategy distribution"):
        _run("tensorflow", setup, "None", tmp_path)


def test_torch_is_refused_with_exit_2(tmp_path, image_folder):
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "keras_tl", "finetune", image_folder, "--distribute",
         "data_parallel", "--output", str(tmp_path / "run")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "distribute='data_parallel' is not supported with the torch backend" in done.stderr


def test_no_distribution_records_nothing_and_unknown_mode_is_refused(tmp_path):
    import keras_tl
    from keras_tl.errors import ConfigError
    from tests.helpers import colour_arrays, tiny_backbone

    x, y, names = colour_arrays()
    with pytest.raises(ConfigError, match="distribute must be None, 'auto', 'data_parallel' or 'multi_worker'"):
        keras_tl.finetune((x, y), tiny_backbone(), distribute="model_parallel")
    keras_tl.finetune((x, y), tiny_backbone(), class_names=names, verbose=0, distribute="auto",
                      stages=[keras_tl.Stage("head", epochs=1)], output_dir=str(tmp_path / "r"))
    config = json.load(open(tmp_path / "r" / "run.json"))["config"]
    assert "distribution" not in config  # one device: "auto" does not distribute
