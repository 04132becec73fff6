"""`keras-tl serve`: TensorFlow Serving's REST API over every export format,
exercised with a real HTTP client against a server on a free port."""

import base64
import concurrent.futures
import http.client
import io
import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.browser import CHROMIUM
from tests.test_detection_export import detector_export  # noqa: F401  (a fixture)
from tests.test_export import CLASS_NAMES, SIZE, colour_images, tiny_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ("saved_model", "onnx", "litert")
# KERAS_TL_PAGE_SCREENSHOTS=docs writes the Chromium tests' screenshots there
SCREENSHOTS = os.environ.get("KERAS_TL_PAGE_SCREENSHOTS")


def _screenshot(name):
    return os.path.join(SCREENSHOTS, f"serving_page_{name}.png") if SCREENSHOTS else None


class Server:
    """`keras_tl.serving.rest.serve` on a free port, in a thread."""

    def __init__(self, path, format=None, name=None, **options):
        from keras_tl.serving.models import model_name_of, open_model
        from keras_tl.serving.rest import serve

        self.name = name or model_name_of(path)
        self.served = open_model(path, format=format)
        self.server = serve(self.served, self.name, port=0, **options)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method, path, body=None, raw=None):
        """(status, decoded JSON or text) of one request on a new connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        connection.request(method, path, body=data,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read().decode("utf-8")
        connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(text) if kind.startswith("application/json") else text

    def predict(self, body, version=None):
        at = f"/versions/{version}" if version is not None else ""
        return self.request("POST", f"/v1/models/{self.name}{at}:predict", body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def png_bytes(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, "uint8")).save(buffer, format="PNG")
    return buffer.getvalue()


# -- TF Serving's documented bodies ------------------------------------------
# The request bodies of https://www.tensorflow.org/tfx/serving/api_rest
# ("Specifying input tensors in row format" / "in column format"), quoted;
# the doc's second instance has a stray "]" after "signal" (not JSON), removed.
DOC_ROW_ONE_INPUT = '{"instances": [ "foo", "bar", "baz" ]}'
DOC_ROW_ONE_INPUT_2D = '{"instances": [ [[1, 2]], [[3, 4]] ]}'
DOC_ROW_NAMED = """{
 "instances": [
   {
     "tag": "foo",
     "signal": [1, 2, 3, 4, 5],
     "sensor": [[1, 2], [3, 4]]
   },
   {
     "tag": "bar",
     "signal": [3, 4, 1, 2, 5],
     "sensor": [[4, 5], [6, 8]]
   }
 ]
}"""
DOC_COLUMNAR = """{
 "inputs": {
   "tag": ["foo", "bar"],
   "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
   "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]
 }
}"""
DOC_SPECS = {"tag": {"dtype": "string", "shape": [None]},
             "signal": {"dtype": "int32", "shape": [None, 5]},
             "sensor": {"dtype": "float32", "shape": [None, 2, 2]}}


def test_documented_request_bodies_decode_as_tf_serving_reads_them():
    from keras_tl.serving.rest import columns_to_inputs, instances_to_inputs

    one = instances_to_inputs(json.loads(DOC_ROW_ONE_INPUT)["instances"],
                              {"x": {"dtype": "string"}})
    assert one["x"].tolist() == [b"foo", b"bar", b"baz"]
    two = instances_to_inputs(json.loads(DOC_ROW_ONE_INPUT_2D)["instances"],
                              {"x": {"dtype": "float32"}})
    assert two["x"].shape == (2, 1, 2)
    rows = instances_to_inputs(json.loads(DOC_ROW_NAMED)["instances"], DOC_SPECS)
    columns = columns_to_inputs(json.loads(DOC_COLUMNAR)["inputs"], DOC_SPECS)
    for key in DOC_SPECS:  # the doc: the columnar body is the row body's equivalent
        assert rows[key].tolist() == columns[key].tolist(), key
    assert rows["sensor"].dtype == np.float32 and rows["signal"].dtype == np.int32
    assert rows["tag"].tolist() == [b"foo", b"bar"]
    # the doc's binary example: {"b64": ...} objects decode to the bytes
    image = {"image": {"b64": "aW1hZ2UgYnl0ZXM="}}
    assert instances_to_inputs([image], {"image": {"dtype": "string"}})["image"].tolist() == [
        b"image bytes"]


def test_documented_response_shapes():
    from keras_tl.serving.rest import outputs_to_columns, outputs_to_predictions

    # half_plus_three's documented answer: one output, its name omitted
    assert outputs_to_predictions({"y": np.array([3.5, 4.0, 5.5])}) == [3.5, 4.0, 5.5]
    both = {"a": np.array([1, 2]), "name_bytes": np.array([b"\xff", b"x"], dtype=object)}
    assert outputs_to_predictions(both) == [{"a": 1, "name_bytes": {"b64": "/w=="}},
                                            {"a": 2, "name_bytes": {"b64": "eA=="}}]
    assert outputs_to_columns(both) == {"a": [1, 2], "name_bytes": [{"b64": "/w=="},
                                                                     {"b64": "eA=="}]}


# -- image classifier: every format ------------------------------------------
@pytest.fixture(scope="module")
def image_export(tmp_path_factory):
    from keras_tl.exporters import export

    model = tiny_classifier()
    x, y = colour_images(per_class=6, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    base = tmp_path_factory.mktemp("saved_models") / "colours"
    report = export(model, base, class_names=CLASS_NAMES, verification_inputs=x[:8])
    return report


@pytest.fixture(scope="module", params=FORMATS)
def image_server(request, image_export):
    server = Server(os.path.dirname(image_export.path), format=request.param)
    yield server
    server.close()


@pytest.fixture(scope="module")
def photos():
    """Three colour photos of another size than the model's (30 x 20)."""
    images, labels = colour_images(per_class=1, seed=5)
    from PIL import Image

    return [np.asarray(Image.fromarray(image.astype("uint8")).resize((20, 30)))
            for image in images], labels


def test_status_and_metadata_as_tf_serving_answers(image_server):
    status, body = image_server.request("GET", "/v1/models/colours")
    assert status == 200
    assert body == {"model_version_status": [{
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert image_server.request("GET", "/v1/models/colours/versions/1")[1] == body
    status, meta = image_server.request("GET", "/v1/models/colours/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "colours", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    images = defs["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", str(SIZE), str(SIZE), "3"]
    assert defs["serving_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert set(defs["serving_default"]["outputs"]) == {"probabilities", "class_ids",
                                                       "class_names"}
    assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    if image_server.served.format == "saved_model":  # the SavedModel's own tensor names
        assert images["name"] == "serving_default_images:0"


def test_predict_rows_and_columns_match_the_export(image_server, image_export):
    from keras_tl.exporters.predict import load_export

    pixels, _ = colour_images(per_class=1, seed=3)
    expected = load_export(image_export.files["onnx"]).outputs(pixels)["probabilities"]
    status, rows = image_server.predict({"instances": pixels.tolist()})
    assert status == 200, rows
    assert [sorted(p) for p in rows["predictions"]] == [
        ["class_ids", "class_names", "probabilities"]] * 3
    probabilities = np.array([p["probabilities"] for p in rows["predictions"]])
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert [p["class_names"] for p in rows["predictions"]] == [
        CLASS_NAMES[i] for i in expected.argmax(-1)]
    status, named = image_server.predict({"signature_name": "serving_default",
                                          "instances": [{"images": p} for p in pixels.tolist()]})
    assert named == rows
    status, columns = image_server.predict({"inputs": {"images": pixels.tolist()}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, atol=1e-5)
    assert columns["outputs"]["class_ids"] == expected.argmax(-1).tolist()
    assert image_server.predict({"inputs": pixels.tolist()})[1] == columns  # one input: bare


def test_b64_images_of_any_size_match_predict_on_the_files(image_server, image_export, photos,
                                                            tmp_path):
    from keras_tl.exporters.predict import load_export

    images, _ = photos
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        with open(paths[-1], "wb") as f:
            f.write(png_bytes(image))
    loaded = load_export(image_export.files["onnx"])
    expected = loaded.outputs(loaded.task.prepare_inputs(paths, loaded.info))["probabilities"]
    body = {"signature_name": "serving_bytes",
            "instances": [{"image_bytes": b64(png_bytes(image))} for image in images]}
    status, answer = image_server.predict(body)
    assert status == 200, answer
    got = np.array([p["probabilities"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    status, columns = image_server.predict({"signature_name": "serving_bytes", "inputs": {
        "image_bytes": [b64(png_bytes(image)) for image in images]}})
    np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, atol=1e-5)


def test_bad_requests_get_tf_serving_errors(image_server):
    pixels = np.zeros((1, SIZE, SIZE, 3)).tolist()
    cases = [
        (image_server.request("POST", "/v1/models/colours:predict", raw="{not json"), 400,
         "JSON Parse error"),
        (image_server.request("POST", "/v1/models/flowers:predict", {"instances": pixels}), 404,
         "Servable not found for request: Latest(flowers)"),
        (image_server.predict({"instances": pixels}, version=7), 404,
         "Servable not found for request: Specific(colours, 7)"),
        (image_server.predict({"signature_name": "nope", "instances": pixels}), 400,
         '"nope" not found'),
        (image_server.predict({"pixels": pixels}), 400, "Missing 'inputs' or 'instances'"),
        (image_server.predict({"instances": pixels, "inputs": pixels}), 400, "both"),
        (image_server.predict({"instances": []}), 400, "non-empty list"),
        (image_server.predict({"instances": [{"pixels": pixels[0]}]}), 400, "takes ['images']"),
        (image_server.predict({"instances": [[["a"]]]}), 400, "float32 numbers"),
        (image_server.predict({"instances": np.zeros((1, 8, 8, 3)).tolist()}), 400,
         f"[batch, {SIZE}, {SIZE}, 3]"),
        (image_server.predict({"signature_name": "serving_bytes",
                               "instances": [{"image_bytes": {"b64": "%%%"}}]}), 400,
         "not valid base64"),
        (image_server.predict({"signature_name": "serving_bytes",
                               "instances": [{"image_bytes": b64(b"not an image")}]}), 400, ""),
        (image_server.request("GET", "/v1/models/colours:predict"), 405, "POST"),
        (image_server.request("GET", "/v2/models"), 404, "Malformed request"),
    ]
    for (status, body), want_status, want_text in cases:
        assert status == want_status, (body, want_status)
        assert set(body) == {"error"} and want_text in body["error"], (body, want_text)
        assert "Traceback" not in body["error"]


def test_requests_over_the_size_limit_get_413(image_export):
    server = Server(image_export.path, max_request_bytes=1000)
    try:
        pixels = np.zeros((1, SIZE, SIZE, 3)).tolist()
        status, body = server.predict({"instances": pixels})
        assert status == 413 and set(body) == {"error"}
        status, _ = server.request("GET", f"/v1/models/{server.name}")
        assert status == 200  # the server lives on
    finally:
        server.close()


def test_concurrent_requests_give_identical_answers(image_server, photos):
    images, _ = photos
    body = {"signature_name": "serving_bytes",
            "instances": [{"image_bytes": b64(png_bytes(image))} for image in images]}
    pixels = {"instances": colour_images(per_class=1, seed=4)[0].tolist()}
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: image_server.predict(body if i % 2 else pixels),
                                range(10)))
    assert all(status == 200 for status, _ in answers), answers
    assert all(answer == answers[1] for answer in answers[1::2])
    assert all(answer == answers[0] for answer in answers[0::2])
    assert answers[0] != answers[1]


def test_the_page_is_self_contained(image_server):
    status, page = image_server.request("GET", "/")
    assert status == 200
    config = json.loads(re.search(r'<script id="model" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    assert config["name"] == "colours" and config["class_names"] == CLASS_NAMES
    assert "serving_bytes" in config["signatures"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no CDN, no network


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")
def test_the_page_shows_predictions_in_headless_chromium(image_export, photos, tmp_path):
    from tests.browser import try_page

    server = Server(os.path.dirname(image_export.path), format="onnx")
    try:
        images, _ = photos
        path = tmp_path / "photo.png"
        path.write_bytes(png_bytes(images[0]))
        status, answer = server.predict({"signature_name": "serving_bytes", "instances": [
            {"image_bytes": b64(path.read_bytes())}]})
        probabilities = np.array(answer["predictions"][0]["probabilities"])
        shown = try_page(f"http://127.0.0.1:{server.server.port}/", file=str(path),
                         screenshot=_screenshot("classifier"))
    finally:
        server.close()
    # the classes, most probable first, each with its probability to 3 decimals
    assert shown["rows"] == [[CLASS_NAMES[i], f"{probabilities[i]:.3f}"]
                             for i in np.argsort(-probabilities)]
    assert not shown["canvas"]  # a classifier: no boxes


# -- the command line ----------------------------------------------------------
def test_cli_serves_and_prints_its_url(image_export):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", "serve", os.path.dirname(image_export.path),
         "--port", "0", "--format", "onnx", "--name", "shades"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"page\s+http://127\.0\.0\.1:(\d+)/", line)
            if found:
                break
        assert found, "".join(lines)
        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=60)
        connection.request("POST", "/v1/models/shades:predict", json.dumps(
            {"instances": np.zeros((1, SIZE, SIZE, 3)).tolist()}))
        response = connection.getresponse()
        assert response.status == 200
        assert set(json.loads(response.read())["predictions"][0]) == {
            "probabilities", "class_ids", "class_names"}
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_cli_refuses_bad_arguments_before_loading(image_export, tmp_path, capsys):
    from keras_tl.cli import main

    folder = os.path.dirname(image_export.path)
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "No export at" in capsys.readouterr().err
    assert main(["serve", folder, "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    assert main(["serve", folder, "--name", "a/b"]) == 2
    assert "--name" in capsys.readouterr().err
    assert main(["serve", image_export.files["onnx"], "--format", "litert"]) == 2
    assert "is a file already" in capsys.readouterr().err


# -- the other tasks -----------------------------------------------------------
@pytest.fixture(scope="module")
def text_export(tiny_preset, tmp_path_factory):
    from keras_tl.exporters import export
    from keras_tl.tasks import get_task
    from tests.helpers import sentiment_texts

    prepared = get_task("text_classification").prepare(
        sentiment_texts(8), tiny_preset, sequence_length=16, batch_size=8)
    return export(prepared, tmp_path_factory.mktemp("saved_models") / "reviews")


@pytest.mark.parametrize("format", ("saved_model", "onnx"))
def test_text_classifier_served_from_both_formats(text_export, format):
    from keras_tl.exporters.predict import load_export

    texts = ["great value, would buy again", "stale and bland", "ok"]
    expected = load_export(text_export.files["onnx"]).outputs(texts)["probabilities"]
    server = Server(os.path.dirname(text_export.path), format=format)
    try:
        status, rows = server.predict({"instances": texts})
        assert status == 200, rows
        np.testing.assert_allclose([p["probabilities"] for p in rows["predictions"]], expected,
                                   atol=1e-5)
        status, named = server.predict({"instances": [{"texts": t} for t in texts]})
        assert named == rows
        status, columns = server.predict({"inputs": {"texts": texts}})
        np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, atol=1e-5)
        assert columns["outputs"]["class_names"] == [p["class_names"] for p in rows["predictions"]]
        status, body = server.predict({"instances": [[1, 2]]})
        assert status == 400 and set(body) == {"error"}
        status, page = server.request("GET", "/")
        assert status == 200 and "textarea" in page
    finally:
        server.close()


@pytest.fixture(scope="module")
def keyword_export(tmp_path_factory):
    import keras_tl
    from tests.test_keyword_task import _tones

    root = tmp_path_factory.mktemp("kws")
    x, y = _tones(16)
    result = keras_tl.finetune(
        (x, y), stages=[keras_tl.Stage("head", epochs=3, learning_rate=1e-2)],
        batch_size=8, validation_split=0.25, verbose=0, output_dir=str(root / "run"))
    return keras_tl.export(result, str(root / "saved_models" / "kws"))


@pytest.mark.parametrize("format", FORMATS)
def test_keyword_spotter_takes_wav_bytes_and_waveforms(keyword_export, format, tmp_path):
    from keras_tl.exporters.predict import load_export
    from tests.test_keyword_task import _tones, _write_wav

    clips, _ = _tones(2, seed=3)
    paths = [_write_wav(tmp_path / "a.wav", clips[0], 8000),
             _write_wav(tmp_path / "b.wav", clips[1], 22050, channels=2)]
    loaded = load_export(keyword_export.files["onnx"])
    expected = loaded.outputs(loaded.task.prepare_inputs(paths, loaded.info))["probabilities"]
    server = Server(os.path.dirname(keyword_export.path), format=format)
    try:
        wavs = [open(path, "rb").read() for path in paths]
        status, rows = server.predict({"signature_name": "serving_wav",
                                       "instances": [{"wav_bytes": b64(w)} for w in wavs]})
        assert status == 200, rows
        np.testing.assert_allclose([p["probabilities"] for p in rows["predictions"]], expected,
                                   atol=1e-4)
        status, columns = server.predict({"inputs": {"waveforms": clips.tolist()}})
        assert status == 200, columns
        np.testing.assert_allclose(columns["outputs"]["probabilities"],
                                   loaded.outputs(clips)["probabilities"], atol=1e-4)
        status, body = server.predict({"signature_name": "serving_wav",
                                       "instances": [{"wav_bytes": b64(b"RIFF....")}]})
        assert status == 400 and set(body) == {"error"}, body
    finally:
        server.close()


COMPARED = 10  # detections compared across formats (the tail's near-ties may reorder)


@pytest.mark.slow  # trains and exports a detector: about 2 minutes
def test_detector_boxes_agree_across_formats(detector_export):  # noqa: F811
    from PIL import Image

    _, report = detector_export  # its NMS threshold lowered so that there are boxes
    root = os.path.dirname(os.path.dirname(os.path.dirname(report.path)))
    source = os.path.join(root, "voc", "JPEGImages", "3.png")
    photo = np.asarray(Image.open(source).convert("RGB").resize((96, 48)))
    body = {"signature_name": "serving_bytes",
            "instances": [{"image_bytes": b64(png_bytes(photo))}]}
    answers = {}
    for format in FORMATS:
        server = Server(os.path.dirname(report.path), format=format)
        try:
            status, answer = server.predict(body)
            assert status == 200, answer
            answers[format] = answer["predictions"][0]
            pixels = np.asarray(Image.fromarray(photo).resize((64, 64)), "float32")
            status, columns = server.predict({"inputs": {"images": [pixels.tolist()]}})
            assert status == 200 and set(columns["outputs"]) == {
                "boxes", "scores", "class_ids", "class_names", "num_detections"}
            if CHROMIUM and format == "saved_model":  # the page draws the boxes
                from tests.browser import try_page

                path = os.path.join(os.path.dirname(source), "..", "photo_96x48.png")
                with open(path, "wb") as f:
                    f.write(png_bytes(photo))
                shown = try_page(f"http://127.0.0.1:{server.server.port}/", file=path,
                                 screenshot=_screenshot("detector"))
                answers["page"] = shown
        finally:
            server.close()
    reference = answers["saved_model"]
    count = reference["num_detections"]
    assert count > 0 and len(reference["boxes"]) == 100
    assert reference["class_ids"][count:] == [-1] * (100 - count)
    assert reference["class_names"][count:] == [""] * (100 - count)
    if "page" in answers:
        assert answers["page"]["canvas"] and f"{count} detection" in answers["page"]["text"]
    k = min(count, COMPARED)
    for format in ("onnx", "litert"):
        got = answers[format]
        assert abs(got["num_detections"] - count) <= 2, (format, got["num_detections"], count)
        assert got["class_names"][:k] == reference["class_names"][:k], format
        np.testing.assert_allclose(got["scores"][:k], reference["scores"][:k], atol=1e-4)
        # boxes in pixels of the 96 x 48 photo as given, not the model's 64 x 64
        np.testing.assert_allclose(got["boxes"][:k], reference["boxes"][:k], atol=0.05)


# -- warm-up and garbage collection at load -------------------------------------
@pytest.mark.parametrize("format", FORMATS)
def test_open_model_replays_the_warmup_file_through_every_format(image_export, format):
    from keras_tl.serving.models import open_model
    from keras_tl.serving.warmup import warm_up

    folder = os.path.dirname(image_export.path)
    # serving_default and serving_bytes, each at batch 1 and 8 (the verification images)
    served = open_model(folder, format=format)
    assert served.warmup_requests == 4 and served.warmup_seconds > 0
    cold = open_model(folder, format=format, warmup=False)
    assert cold.warmup_requests == 0
    calls = []
    run = cold.run
    cold.run = lambda signature, inputs: calls.append(
        (signature, {k: np.shape(v) for k, v in inputs.items()})) or run(signature, inputs)
    assert warm_up(cold).warmup_requests == 4
    assert calls == [("serving_default", {"images": (1, SIZE, SIZE, 3)}),
                     ("serving_default", {"images": (8, SIZE, SIZE, 3)}),
                     ("serving_bytes", {"image_bytes": (1,)}),
                     ("serving_bytes", {"image_bytes": (8,)})]


def test_warmup_records_parse_as_tensorflow_serving_api_parses_them(image_export):
    tf = pytest.importorskip("tensorflow")
    prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    from keras_tl.exporters.tf_serving import WARMUP_FILE
    from keras_tl.serving.warmup import read_warmup_requests

    path = os.path.join(image_export.path, WARMUP_FILE)
    expected = []
    for record in tf.data.TFRecordDataset(path):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        expected.append((request.model_spec.signature_name,
                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
    got = read_warmup_requests(path)
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, mine), (_, theirs) in zip(got, expected):
        assert set(mine) == set(theirs)
        for key in mine:
            assert mine[key].dtype == theirs[key].dtype and mine[key].shape == theirs[key].shape
            assert (mine[key] == theirs[key]).all()


def test_warmup_skips_unserved_signatures_and_fails_the_load_on_a_bad_request(tmp_path):
    from keras_tl.errors import ExportError, ServingError
    from keras_tl.exporters.tf_serving import WARMUP_FILE, prediction_log
    from keras_tl.serving.models import ServedSignatures
    from keras_tl.serving.warmup import replay_warmup

    tf = pytest.importorskip("tensorflow")
    path = tmp_path / WARMUP_FILE
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(prediction_log("m", "serving_default", {"x": np.ones((2, 3), "float32")}))
        writer.write(prediction_log("m", "serving_multi", {"a": [1], "b": [2]}))
        writer.write(prediction_log("m", "serving_default", {"x": np.array([b"bad"], object)}))

    class Served(ServedSignatures):
        signatures = {"serving_default": {"inputs": {"x": {}}, "outputs": {}}}

        def __init__(self):
            self.path, self.seen = str(tmp_path), []

        def run(self, signature, inputs):
            if inputs["x"].dtype == object:
                raise ServingError("x takes numbers")
            self.seen.append(inputs["x"].tolist())
            return {}

    served = Served()
    with pytest.raises(ExportError, match="Warm-up request 2 .*x takes numbers"):
        replay_warmup(served)
    assert served.seen == [[[1.0] * 3] * 2]  # serving_multi: not served here, skipped
    empty = Served()
    empty.path = str(tmp_path / "elsewhere" / "model.onnx")
    assert replay_warmup(empty) == 0  # a file copied without its version folder


def test_serve_freezes_the_loaded_objects_out_of_gc(image_export):
    import gc

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    server = Server(os.path.dirname(image_export.path), format="litert")
    try:
        assert gc.get_freeze_count() > 0
        assert server.predict({"instances": np.zeros((1, SIZE, SIZE, 3)).tolist()})[0] == 200
    finally:
        server.close()
        gc.unfreeze()


def test_cli_serve_says_how_many_warmup_requests_it_replayed(image_export):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_tl", "serve", os.path.dirname(image_export.path),
         "--port", "0", "--format", "litert"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl+C" in line:
                break
        text = "".join(lines)
        assert re.search(r"warm-up\s+4 requests of assets.extra/tf_serving_warmup_requests "
                         r"replayed \(\d+\.\d s\)", text), text
    finally:
        process.terminate()
        process.wait(timeout=60)
