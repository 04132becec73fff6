import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_TL_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "keras_tl"))

import pytest  # noqa: E402

from tests import helpers  # noqa: E402


@pytest.fixture
def image_folder(tmp_path):
    """Three classes of 8 small colour images each, as PNG files."""
    return helpers.write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    """A tiny BERT keras_hub preset folder, shared by the session."""
    return helpers.save_tiny_preset(tmp_path_factory.mktemp("tiny_bert"))
