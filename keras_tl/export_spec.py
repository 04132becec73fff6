"""The export spec: what a task serves, in the terms every export format reads.

A task describes its exports once, in `Task.export_spec(model, info,
class_names, sample)`; each exporter (`keras_tl.exporters`: SavedModel,
ONNX, LiteRT) reads only this description, and no task names a format
(as keras-hub's per-task export configs, and keras' one module per format).

- `Signature`: one named graph the SavedModel serves (`serving_default` on
  pixels, waveforms or strings; `serving_bytes` on encoded files...): its
  input and output contract (dtypes, shapes, as written into
  `keras_tl.json`), the TensorFlow function that computes it, its feed
  from model inputs, and whether a converter can carry its ops.
- `ConvertedGraph`: the plain-tensor graph that converting formats
  convert: a Keras model (a classifier itself; a text classifier's
  classifier on token ids; a detector's pre-NMS anchors) or a TensorFlow
  function (a detector's detections, NMS inside); its feed, and how its
  outputs are judged against the Keras model. A spec may offer others by
  name (`ExportSpec.alternatives`, chosen by `use_converted`).
- `Asset`: a file written beside the formats (a tokenizer's vocabulary).
- `ExportSpec`: all of it, with the verification inputs, the Keras
  reference outputs every signature is verified against, the facts an
  export records (`info`), and how a format's outputs become predictions.

This module is a leaf (no keras_tl import beyond the standard library), so
tasks and exporters both import it without a cycle.

Example:
>>> spec = ExportSpec("demo", "image", ["a", "b"], {}, signatures=(
...     Signature("serving_default", {"x": {"dtype": "float32", "shape": [None, 2]}},
...               {"y": {"dtype": "float32", "shape": [None]}}),))
>>> spec.contract()["serving_default"]["inputs"]
{'x': {'dtype': 'float32', 'shape': [None, 2]}}
>>> spec.signatures[0].feed_for([1, 2])
{'x': [1, 2]}
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Dict, List, Optional, Tuple


def as_they_are(outputs, reference):
    """The default judgement: a format's outputs and the Keras reference,
    compared output by output as they are.

    Example:
    >>> as_they_are({"p": 1}, {"p": 2})
    ({'p': 1}, {'p': 2})
    """
    return outputs, reference


def named_outputs(model, inputs):
    """A Keras model's outputs for model inputs, `{output_name: array}`
    (dict outputs by key, else named by `model.output_names`).

    Example:
    >>> import keras, numpy as np
    >>> x = keras.Input((2,))
    >>> model = keras.Model(x, keras.layers.Dense(3, name="scores")(x))
    >>> named_outputs(model, np.ones((4, 2)))["scores"].shape
    (4, 3)
    """
    import keras  # the spec module stays importable without Keras (predict)
    import numpy as np

    outputs = model.predict(inputs, verbose=0)
    if isinstance(outputs, dict):
        return {name: np.asarray(value) for name, value in outputs.items()}
    outputs = keras.tree.flatten(outputs)
    names = list(getattr(model, "output_names", None) or [])
    names += [f"output_{i}" for i in range(len(names), len(outputs))]
    return {name: np.asarray(value) for name, value in zip(names, outputs)}


@dataclasses.dataclass
class Signature:
    """One named graph the SavedModel serves.

    Attributes:
        name: the signature's name (`"serving_default"` first).
        inputs: `{input_key: {"dtype", "shape", ...}}`, as `keras_tl.json`
            documents it.
        outputs: the same for its outputs.
        function: `() -> tf.function` (with its input signature) or a
            concrete function: builds the graph, under TensorFlow only;
            `None` in a spec made without a model.
        feed: `model inputs -> {input_key: array}`, its feed for the
            verification inputs (or `None` when it cannot be fed from
            them); default: the model inputs under its one input key.
        convertible: a converter can carry its ops (`False` for a graph
            with a data-dependent NMS loop, or a string tokenizer).

    Example:
    >>> signature = Signature("serving_default", {"a": {}, "b": {}}, {})
    >>> signature.feed_for([1]) is None  # two inputs: no default feed
    True
    """

    name: str
    inputs: Dict[str, dict]
    outputs: Dict[str, dict]
    function: Optional[Callable[[], Any]] = None
    feed: Optional[Callable[[Any], Optional[dict]]] = None
    convertible: bool = True

    def feed_for(self, inputs):
        """The signature's feed for model inputs (see `feed`).

        Example:
        >>> Signature("s", {"x": {}}, {}).feed_for([3])
        {'x': [3]}
        """
        if self.feed is not None:
            return self.feed(inputs)
        if len(self.inputs) != 1:
            return None
        (key,) = self.inputs
        return {key: inputs}


@dataclasses.dataclass
class ConvertedGraph:
    """The graph that formats which convert a model (rather than a
    TensorFlow signature) convert.

    Attributes:
        model: the Keras model (`None` in a spec made without a model).
        function: `() -> tf.function` with its input signature (its
            inputs named), returning a dict of tensors: a graph in
            TensorFlow ops that converters carry, converted instead of
            `model` (a detector's NMS); built under TensorFlow only,
            `None` when the Keras model is converted.
        feed: `(model inputs, folder) -> array or {input_name: array}`, its
            feed, where `folder` holds the export's files (a feed may read
            the assets written there); default: the model inputs.
        predict: `model inputs -> {output: array}`, its Keras outputs, when
            they are not the signatures' (a detector's pre-NMS anchors);
            `None`: it is verified against the signatures' reference.
        compare: `(outputs, reference) -> (outputs, reference)`: what the
            verification compares, output by output, against the tolerance
            (default: `as_they_are`).
        reads_assets: its feed reads the assets beside it (a tokenizer's
            vocabulary): the model alone does not take the raw inputs.
        measures: `{name: (outputs, reference) -> float}`, recorded in each
            verification report of the graph beside the comparison (e.g. a
            detector's box difference in pixels); not judged.

    Example:
    >>> ConvertedGraph(model=None).feed_for([1, 2], ".")
    [1, 2]
    """

    model: Any = None
    feed: Optional[Callable[[Any, str], Any]] = None
    predict: Optional[Callable[[Any], dict]] = None
    compare: Callable = as_they_are
    reads_assets: bool = False
    function: Optional[Callable[[], Any]] = None
    measures: Dict[str, Callable[[dict, dict], float]] = dataclasses.field(default_factory=dict)

    def feed_for(self, inputs, folder):
        """The converted model's feed for model inputs (see `feed`).

        Example:
        >>> ConvertedGraph(feed=lambda x, folder: {"ids": x}).feed_for([1], ".")
        {'ids': [1]}
        """
        return inputs if self.feed is None else self.feed(inputs, folder)


def top1_agreement(output):
    """`(outputs, reference) -> float`: how often a lossy format's top class
    in `output` is the Keras model's (a classifier's quality measure).

    Example:
    >>> import numpy as np
    >>> measure = top1_agreement("p")
    >>> measure({"p": np.array([[0.1, 0.9], [0.6, 0.4]])}, {"p": np.array([[0.2, 0.8], [0.3, 0.7]])})
    0.5
    """
    def measure(outputs, reference):
        import numpy as np  # the spec module imports the standard library only

        got, expected = np.asarray(outputs[output]), np.asarray(reference[output])
        return float(np.mean(got.argmax(-1) == expected.argmax(-1)))

    return measure


@dataclasses.dataclass
class QualityCheck:
    """How a lossy variant of a converted graph (int8 LiteRT) is judged
    before it is written: `measure(outputs, reference) -> float` on the
    verification inputs (the variant's outputs as it returns them, and the
    Keras model's for the same graph), higher is better, named `metric`;
    written only when it is at least `threshold`.

    Example:
    >>> check = QualityCheck("top1_agreement", top1_agreement("p"), 0.98)
    >>> check.metric, check.threshold
    ('top1_agreement', 0.98)
    """

    metric: str
    measure: Callable[[dict, dict], float]
    threshold: float = 0.98


@dataclasses.dataclass
class Asset:
    """A file written beside the exported formats.

    Attributes:
        key: its key in the export's `files` (e.g. `"vocabulary"`).
        path: its path inside the version folder (e.g. `"tokenizer/vocab.txt"`).
        write: `path -> None`, writes it.

    Example:
    >>> import os, pathlib
    >>> asset = Asset("note", "notes/readme.txt", lambda path: pathlib.Path(path).write_text("hi"))
    >>> files = write_assets([asset], str(tmp_path))
    >>> os.path.relpath(files["note"], str(tmp_path)), open(files["note"]).read()
    ('notes/readme.txt', 'hi')
    """

    key: str
    path: str
    write: Callable[[str], Any]


@dataclasses.dataclass
class ExportSpec:
    """Everything an export writes and verifies, for one model.

    Attributes:
        task, modality: the task's name and modality.
        class_names: class names, index i for class id i.
        info: what the export records (`keras_tl.json`, ONNX metadata):
            the run's `info` plus what clients need from the model (a
            detector's NMS settings).
        signatures: the SavedModel's graphs, the default first.
        converted: the graph converting formats convert, or `None`
            when the model has none (e.g. a tokenizer no other runtime
            reproduces).
        alternatives: `{name: ConvertedGraph}`, other graphs a client may
            have converted instead (a detector's `"raw_anchors"`, pre-NMS),
            chosen by `use_converted`.
        assets: files written beside the formats.
        verification_inputs: model inputs every format is compared on.
        predict: `model inputs -> {output: array}`, the Keras model's own
            outputs (`None` in a spec made without a model).
        served: `model outputs -> {output: array}`, what every signature
            returns, computed with NumPy (a classifier adds `class_ids`
            and `class_names`); default: the outputs themselves.
        postprocess: `(outputs, inputs, top) -> predictions`: a format's
            named outputs (any signature's or the converted model's) for
            the raw `inputs` as given, to the task's predictions.
        quality: the `QualityCheck` a lossy variant (int8 LiteRT) must pass
            to be written; `None`: the task declares none (written, unjudged).
        representative_inputs: raw training inputs (never the verification
            ones) that calibrate a quantized variant's activation ranges;
            `None`: weights-only quantization.

    Example:
    >>> spec = ExportSpec("demo", "image", ["a"], {}, signatures=(),
    ...                   verification_inputs=[1, 2], predict=lambda x: {"y": x})
    >>> spec.reference
    {'y': [1, 2]}
    """

    task: str
    modality: str
    class_names: List[str]
    info: Dict[str, Any]
    signatures: Tuple[Signature, ...]
    converted: Optional[ConvertedGraph] = None
    assets: Tuple[Asset, ...] = ()
    verification_inputs: Any = None
    predict: Optional[Callable[[Any], dict]] = None
    served: Callable[[dict], dict] = lambda outputs: outputs
    postprocess: Optional[Callable] = None
    quality: Optional[QualityCheck] = None
    representative_inputs: Any = None
    alternatives: Dict[str, ConvertedGraph] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def model_outputs(self):
        """The Keras model's outputs for `verification_inputs` (computed once).

        Example:
        >>> ExportSpec("t", "m", [], {}, (), verification_inputs=[1],
        ...            predict=lambda x: {"y": x}).model_outputs
        {'y': [1]}
        """
        return self.predict(self.verification_inputs)

    @functools.cached_property
    def reference(self):
        """What every signature should return for `verification_inputs`.

        Example:
        >>> ExportSpec("t", "m", [], {}, (), verification_inputs=[1], predict=lambda x: {"y": x},
        ...            served=lambda out: {**out, "z": 0}).reference
        {'y': [1], 'z': 0}
        """
        return self.served(self.model_outputs)

    @functools.cached_property
    def converted_reference(self):
        """What the converted model should return for `verification_inputs`.

        Example:
        >>> ExportSpec("t", "m", [], {}, (), converted=ConvertedGraph(predict=lambda x: {"r": x}),
        ...            verification_inputs=[1]).converted_reference
        {'r': [1]}
        """
        if self.converted is not None and self.converted.predict is not None:
            return self.converted.predict(self.verification_inputs)
        return self.reference

    def contract(self):
        """`{signature: {"inputs": ..., "outputs": ...}}`, as written into
        `keras_tl.json`.

        Example:
        >>> ExportSpec("t", "m", [], {}, (Signature("s", {}, {"y": {}}),)).contract()
        {'s': {'inputs': {}, 'outputs': {'y': {}}}}
        """
        return {s.name: {"inputs": s.inputs, "outputs": s.outputs} for s in self.signatures}

    def judged(self, graph, outputs):
        """`(outputs, reference)` as the verification compares them, for the
        outputs of `graph` (a `Signature` or the `ConvertedGraph`).

        Example:
        >>> spec = ExportSpec("t", "m", [], {}, (), verification_inputs=[1],
        ...                   predict=lambda x: {"y": 1.0})
        >>> spec.judged(None, {"y": 0.5})
        ({'y': 0.5}, {'y': 1.0})
        """
        if isinstance(graph, ConvertedGraph):
            return graph.compare(outputs, self.converted_reference)
        return outputs, self.reference


CONVERTED_KEY = "converted"  # the info key naming the alternative converted graph


def use_converted(spec, name=None):
    """`spec` with its alternative converted graph `name`
    (`spec.alternatives`) as the one converting formats convert, the
    choice recorded in its `info["converted"]` (which a spec rebuilt from
    the recorded info follows); `name=None`: the choice `spec.info`
    records, else `spec` as it is.

    Example:
    >>> spec = ExportSpec("t", "m", [], {}, (), converted=ConvertedGraph(),
    ...                   alternatives={"raw": ConvertedGraph(reads_assets=True)})
    >>> chosen = use_converted(spec, "raw")
    >>> chosen.converted.reads_assets, chosen.info
    (True, {'converted': 'raw'})
    >>> use_converted(chosen).converted is chosen.converted
    True
    >>> use_converted(spec, "other")
    Traceback (most recent call last):
    ...
    ValueError: The t spec converts its default graph or one of ['raw'], not 'other'.
    """
    name = name if name is not None else spec.info.get(CONVERTED_KEY)
    if name is None:
        return spec
    if name not in spec.alternatives:
        raise ValueError(f"The {spec.task} spec converts its default graph or one of "
                         f"{sorted(spec.alternatives)}, not {name!r}.")
    return dataclasses.replace(spec, converted=spec.alternatives[name],
                               info={**spec.info, CONVERTED_KEY: name})


def write_assets(assets, folder):
    """Writes each `Asset` under `folder`; returns `{key: path}`.

    Example:
    >>> write_assets([], ".")
    {}
    """
    files = {}
    for asset in assets:
        path = os.path.join(folder, asset.path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        asset.write(path)
        files[asset.key] = path
    return files
