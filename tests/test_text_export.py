"""Text export: a SavedModel on raw strings, and ONNX on token ids with the
tokenizer written beside it in a form other code reads (vocab.txt,
tokenizer_config.json, the pure-Python wordpiece.py), checked against
keras_hub's token ids and served without keras_tl."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from keras_tl.tasks import get_task
from keras_tl.tasks.text_classifier import TOKENIZER_CHECK_TEXTS
from tests.helpers import VOCABULARY, sentiment_texts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Corners of keras_hub's rules beyond TOKENIZER_CHECK_TEXTS.
HARD_TEXTS = [
    "", "   ", "İstanbul ΣΊΣΥΦΟΣ ǅ ß ﬀ Å Ⅻ ① ㎏", "a\u0301 e\u0308 n\u0303", "한국어 텍스트 ᄀ\u1161",
    "नमस्ते दुनिया", "\u3000x\u2028y\u0085z\u000bw\u200dv", "[CLS] [PAD] hello [SEP]",
    "x" * 120, "é" * 60, "email: me@example.com, price $3.50 (50% off!)", "日本語と中文の混合テキスト",
]


@pytest.fixture(scope="module")
def prepared(tiny_preset):  # noqa: F811
    return get_task("text_classification").prepare(
        sentiment_texts(8), tiny_preset, sequence_length=16, batch_size=8)


@pytest.fixture(scope="module")
def exported(prepared, tmp_path_factory):
    from keras_tl.exporters import export

    return export(prepared, tmp_path_factory.mktemp("saved_models") / "reviews")


def test_text_export_layout_and_verification(exported, prepared):
    from keras_tl.errors import ConfigError
    from keras_tl.exporters import export

    assert exported.version == 1
    assert sorted(os.listdir(exported.path)) == [
        "MODEL_CARD.md", "assets", "assets.extra", "fingerprint.pb", "keras_tl.json",
        "model.onnx", "saved_model.pb", "tokenizer", "variables"]
    assert sorted(os.listdir(os.path.join(exported.path, "tokenizer"))) == [
        "tokenizer_config.json", "vocab.txt", "wordpiece.py"]
    v = exported.verification
    # the run's validation texts, then the tokenizer's corner cases
    assert v["inputs"] == len(prepared.sample[:8]) + len(TOKENIZER_CHECK_TEXTS)
    for key in ("saved_model/serving_default", "onnx"):
        assert v[key]["enforced"] and v[key]["max_abs_diff"] <= 1e-5, key
    meta = exported.metadata
    assert meta["task"] == "text_classification" and meta["class_names"] == prepared.class_names
    assert meta["signatures"]["serving_default"]["inputs"] == {
        "texts": {"dtype": "string", "shape": [None]}}
    onnx_inputs = meta["formats"]["onnx"]["inputs"]
    assert onnx_inputs == {name: {"dtype": "int32", "shape": [None, None]}
                           for name in ("padding_mask", "segment_ids", "token_ids")}
    with open(exported.files["tokenizer_config"]) as f:
        config = json.load(f)
    assert sorted(config["model_input_names"]) == sorted(onnx_inputs)
    assert config["model_max_length"] == 16 and config["do_lower_case"] is True
    with open(exported.files["vocabulary"], encoding="utf-8") as f:
        assert f.read().splitlines() == VOCABULARY
    with pytest.raises(ConfigError, match="export to saved_model, onnx; not to litert"):
        export(prepared, os.path.dirname(exported.path), formats=("litert",))


def test_predict_from_every_format_and_the_cli(exported, prepared, capsys):
    from keras_tl import cli
    from keras_tl.exporters.predict import predict

    texts = ["This tea was great!", "awful, stale coffee", "Crème brûlée 😀"]
    expected = prepared.inference_model.predict(texts)
    for source in (os.path.dirname(exported.path), exported.files["onnx"]):
        predictions = predict(source, texts, top=2)
        for prediction, row in zip(predictions, expected):
            order = np.argsort(-row)[:2]
            assert [name for name, _ in prediction] == [prepared.class_names[i] for i in order]
            assert np.allclose([p for _, p in prediction], row[order], atol=1e-5), source
    assert cli.main(["predict", exported.files["onnx"], texts[0], "--top", "1"]) == 0
    name = prepared.class_names[int(expected[0].argmax())]
    assert capsys.readouterr().out.strip() == f"{texts[0]}: {name} {expected[0].max():.3f}"


def test_predict_on_the_onnx_file_imports_neither_tensorflow_nor_keras(exported, prepared):
    texts = ["This tea was great!", "awful, stale coffee"]
    code = ("import sys\n"
            f"sys.argv = ['keras-tl', 'predict', {exported.files['onnx']!r}, *{texts!r}]\n"
            "from keras_tl import cli\n"
            "code = cli.main()\n"
            "print(code, sorted(m for m in ('tensorflow', 'keras', 'keras_hub') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    *lines, last = done.stdout.strip().splitlines()
    assert last == "0 []", done.stdout + done.stderr[-2000:]
    expected = prepared.inference_model.predict(texts)
    names = [prepared.class_names[int(row.argmax())] for row in expected]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == names


def test_served_without_keras_tl(exported, prepared, tmp_path):
    """SavedModel with TensorFlow (+ Text) only; ONNX Runtime fed by the
    export's own wordpiece.py: neither keras_tl nor keras_hub loaded."""
    texts = sentiment_texts(3, seed=5)[0] + list(TOKENIZER_CHECK_TEXTS) + HARD_TEXTS
    path = tmp_path / "texts.json"
    path.write_text(json.dumps(texts))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "serving_check.py"),
                           "--texts", exported.path, str(path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["keras_modules_loaded"] == []
    expected = prepared.inference_model.predict(texts)
    assert report["signatures"]["serving_default"]["inputs"] == {"texts": ["string", [None]]}
    np.testing.assert_allclose(report["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(report["onnx_probabilities"], expected, atol=1e-5)
    assert report["class_names"] == [prepared.class_names[i] for i in expected.argmax(-1)]


def test_tf_serving_configs_and_warmup_replay(exported, prepared):
    """The warm-up requests hold the raw texts; TF Serving (with TensorFlow
    Text's ops) replays them to the SavedModel's outputs."""
    from tests.tf_serving_helpers import assert_server_configs, assert_warmup_replays

    assert_server_configs(exported)
    info = {"task": "text_classification", "modality": "text", **prepared.info}
    spec = get_task("text_classification").export_spec(
        prepared.inference_model, info, prepared.class_names, prepared.sample)
    report = assert_warmup_replays(exported, spec, text_ops=True)
    assert [len(r["inputs"]["texts"]) for r in report["records"]] == [
        1, 8]
    with open(exported.files["model_card"], encoding="utf-8") as f:
        card = f.read()
    assert "- `serving_default`: `texts` string[batch] -> `probabilities`" in card
    assert f"- training: {prepared.info['num_train']} examples" in card


def test_serving_doc_snippet_runs(exported, prepared):
    """docs/serving.md's ONNX Runtime snippet for text, as written."""
    import re

    with open(os.path.join(ROOT, "docs", "serving.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("## Text classifiers")
    section = text[start:text.index("\n## ", start + 1)]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    code = code.replace("saved_models/reviews/1", exported.path)
    code += "print(json.dumps(probabilities.tolist()))\n"
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=""), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = prepared.inference_model.predict(["Tasty and fresh!"])
    np.testing.assert_allclose(json.loads(done.stdout), expected, atol=1e-5)


def test_versions_and_saved_model_only(exported, prepared):
    from keras_tl.errors import ExportError
    from keras_tl.exporters import export

    base = os.path.dirname(exported.path)
    again = export(prepared.inference_model, base, formats=("saved_model",),
                   class_names=prepared.class_names)
    assert again.version == 2 and "onnx" not in again.files
    assert again.metadata["task"] == "text_classification"  # recognised from the model
    with pytest.raises(ExportError, match="never overwrite"):
        export(prepared, base, version=1)


def _bert_tokenizer(**options):
    import keras_hub

    from keras_tl.backbones.text_encoders import default_text_encoder_path

    if not options:  # the offline MiniLM's real 30,522-token vocabulary
        return keras_hub.models.BertTokenizer.from_preset(default_text_encoder_path())
    return keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, **options)


def _written_tokenizer(tokenizer, folder, sequence_length=128):
    """What a text export writes into tokenizer/ for this keras_hub tokenizer."""
    import keras_hub

    from keras_tl.tasks.wordpiece import load_tokenizer

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length)
    pipeline = types.SimpleNamespace(
        preprocessor=preprocessor,
        classifier=types.SimpleNamespace(input=dict.fromkeys(
            ("token_ids", "segment_ids", "padding_mask"))))
    from keras_tl.export_spec import write_assets
    from keras_tl.tasks.text_classifier import tokenizer_assets

    files = write_assets(tokenizer_assets(pipeline), str(folder))
    return preprocessor, load_tokenizer(os.path.dirname(files["vocabulary"])), files


def _review_texts(count):
    from keras_tl.datasets.text_datasets import load_amazon_fine_foods

    (texts, _), _, _ = load_amazon_fine_foods(max_train=count)
    return texts


@pytest.mark.parametrize("options", [{}, {"lowercase": True, "strip_accents": True},
                                     {"lowercase": False}])
def test_wordpiece_reference_gives_keras_hubs_token_ids(options, tmp_path):
    texts = _review_texts(100) + list(TOKENIZER_CHECK_TEXTS) + HARD_TEXTS
    preprocessor, reference, _ = _written_tokenizer(_bert_tokenizer(**options), tmp_path)
    expected = preprocessor(texts)
    ours = reference.encode(texts)
    for name in ("token_ids", "segment_ids", "padding_mask"):
        wanted = np.asarray(expected[name]).astype("int32")
        got = np.asarray(ours[name], dtype="int32")
        different = [texts[i] for i in np.flatnonzero((wanted != got).any(axis=1))]
        assert not different, (name, different[:3])


def test_hugging_face_tokenizers_reads_the_written_vocabulary(tmp_path):
    """`tokenizers.BertWordPieceTokenizer` on vocab.txt with the config's
    settings gives keras_hub's ids on real reviews (docs/serving.md lists
    where its Unicode rules differ)."""
    from tokenizers import BertWordPieceTokenizer

    texts = _review_texts(1000)
    preprocessor, _, files = _written_tokenizer(_bert_tokenizer(), tmp_path)
    with open(files["tokenizer_config"]) as f:
        config = json.load(f)
    hf = BertWordPieceTokenizer(files["vocabulary"], lowercase=config["do_lower_case"],
                                strip_accents=config["strip_accents"],
                                handle_chinese_chars=config["tokenize_chinese_chars"],
                                clean_text=False)  # keep U+FFFD and control characters
    hf.enable_truncation(config["model_max_length"])
    hf.enable_padding(length=config["model_max_length"])
    got = np.asarray([encoding.ids for encoding in hf.encode_batch(texts)])
    wanted = np.asarray(preprocessor(texts)["token_ids"])
    assert np.array_equal(got, wanted)
