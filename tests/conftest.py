import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_TL_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "keras_tl"))

import pytest  # noqa: E402


@pytest.fixture
def image_folder(tmp_path):
    """Three classes of 8 small colour images each, as PNG files."""
    from tests.helpers import write_image_folder

    return write_image_folder(tmp_path / "images")
