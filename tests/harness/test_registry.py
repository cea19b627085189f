import sys
from pathlib import Path

import pytest

from harness.errors import UnknownNameError
from harness.model import MODELS, ModelAdapter, get_model
from harness.registry import Registry
from harness.task import TASKS, TaskGroup, expand_task_names, get_task


class Thing:
    pass


def _validate(name, obj):
    if not (isinstance(obj, type) and issubclass(obj, Thing)):
        raise TypeError(f"{name} is not a Thing")


def test_direct_lazy_and_collision():
    registry = Registry("thing", _validate)
    registry.register("plain", Thing)
    registry.register_lazy("lazy", "harness.errors:UserError")
    assert registry.get("plain") is Thing
    assert registry.names() == ["lazy", "plain"]
    with pytest.raises(TypeError, match="lazy is not a Thing"):
        registry.get("lazy")  # validated after import
    with pytest.raises(ValueError, match="already registered"):
        registry.register("plain", Thing)


def test_miss_suggests_close_names():
    registry = Registry("thing", _validate)
    registry.register("refcoco_val", Thing)
    with pytest.raises(UnknownNameError, match="Did you mean 'refcoco_val'"):
        registry.get("refcoco_vall")


def test_entry_points_are_discovered(tmp_path, monkeypatch):
    package = tmp_path / "thingplugin.py"
    package.write_text("from test_registry import Thing\nclass Extra(Thing):\n    pass\n")
    info = tmp_path / "thingplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thingplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[attreval_test.things]\nextra = thingplugin:Extra\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    registry = Registry("thing", _validate, "attreval_test.things")
    assert "extra" in registry
    assert registry.get("extra").__name__ == "Extra"
    assert registry.origin("extra") == "entry point thingplugin:Extra"
    sys.modules.pop("thingplugin", None)


def test_models_and_tasks_resolve_by_name():
    assert {"oracle", "constant", "replay", "counting"} <= set(MODELS.names())
    adapter = get_model("constant", "answer=no,mask=full")
    assert isinstance(adapter, ModelAdapter)
    assert adapter.name == "constant" and adapter.options["answer"] == "no"
    assert expand_task_names("toy,toy_questions") == ["toy_questions", "toy_segmentation"]
    assert isinstance(TASKS.get("toy"), TaskGroup)
    assert get_task("toy_questions").name == "toy_questions"


def test_fingerprint_changes_with_options():
    first = get_model("constant", "answer=no").fingerprint()
    assert first == get_model("constant", "answer=no").fingerprint()
    assert first != get_model("constant", "answer=yes").fingerprint()
