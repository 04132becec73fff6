"""`keras_tl.registry.Registry`, the one lookup table of backbones, tasks
and export formats."""

import sys

import pytest

from keras_tl.backbones import registry as backbones
from keras_tl.errors import BackboneError, ConfigError
from keras_tl.exporters import registry as exporters
from keras_tl.registry import Registry
from keras_tl.tasks import registry as tasks


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    (tmp_path / "lazy_registry_target.py").write_text("class Thing:\n    made = 0\n"
                                                      "    def __init__(self):\n"
                                                      "        Thing.made += 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_registry_target"
    sys.modules.pop("lazy_registry_target", None)


def test_a_path_target_is_imported_and_instantiated_once_on_first_get(lazy_module):
    things = Registry("Thing", plural="things", instantiate=True)
    things.register("thing", f"{lazy_module}:Thing")
    assert lazy_module not in sys.modules
    first = things.get("thing")
    assert lazy_module in sys.modules
    assert things.get("thing") is first and type(first).made == 1


def test_duplicates_need_overwrite_and_unknown_names_list_the_known():
    things = Registry("Thing", plural="things")
    things.register("a", 1)
    with pytest.raises(ConfigError, match="^Thing 'a' is already registered; pass overwrite=True"):
        things.register("a", 2)
    things.register("a", 2, overwrite=True)
    things.register("b", 3)
    assert things.get("a") == 2 and things.names() == ["a", "b"]
    with pytest.raises(ConfigError) as info:
        things.get("c")
    assert str(info.value) == "Unknown thing 'c'; registered things: a, b."


def test_aliases_are_found_in_the_key_form_and_go_with_unregister():
    things = Registry("Thing", plural="things", key=str.lower)
    things.register("Alpha", 1, aliases=("first",))
    assert things.get("FIRST") == 1 and things.canonical("alpha") == "Alpha"
    things.unregister("Alpha")
    assert "first" not in things and things.names() == []


def test_backbones_tasks_and_formats_share_the_class_and_its_errors():
    for table in (backbones.BACKBONES, tasks._ENTRIES, exporters._ENTRIES):
        assert isinstance(table, Registry)
    with pytest.raises(BackboneError, match="Backbone 'resnet50' is already registered"):
        backbones.register_backbone(backbones.get_backbone_spec("resnet50"))
    with pytest.raises(BackboneError, match="Unknown backbone 'resnet_5o'. Did you mean: resnet50"):
        backbones.get_backbone_spec("resnet_5o")
    with pytest.raises(ConfigError, match="^Unknown task 'segmentation'; registered tasks: object_"):
        tasks.get_task("segmentation")
    with pytest.raises(ConfigError, match="^Export format 'onnx' is already registered"):
        exporters.register_exporter("onnx", "keras_tl.exporters.onnx:OnnxExporter")
