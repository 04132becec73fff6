"""benchmarks/serving.py's summary helpers on synthetic timings (no model, no server)."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "serving.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("serving_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summarize_percentiles_in_milliseconds(bench):
    # 1..100 ms, shuffled: order does not matter
    seconds = [i / 1000 for i in range(100, 0, -1)]
    summary = bench.summarize(seconds)
    assert summary["count"] == 100
    assert summary["p50_ms"] == 50.5
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["p90_ms"] == pytest.approx(90.1)
    assert (summary["min_ms"], summary["max_ms"], summary["mean_ms"]) == (1.0, 100.0, 50.5)


def test_summarize_a_slow_tail_moves_p99_not_p50(bench):
    seconds = [0.010] * 197 + [0.5] * 3  # 1.5% of requests hit a 500 ms pause
    summary = bench.summarize(seconds)
    assert summary["p50_ms"] == 10.0
    assert summary["p99_ms"] == 500.0


def test_summarize_refuses_no_timings(bench):
    with pytest.raises(ValueError):
        bench.summarize([])


def test_ratios_to_the_saved_model(bench):
    results = {"saved_model": {"http": {"p50_ms": 20.0}}, "onnx": {"http": {"p50_ms": 10.0}},
               "litert_int8": {"in_process": {}}}  # no HTTP numbers: left out
    assert bench.ratios(results, "http.p50_ms") == {"onnx": 0.5}
    assert bench.ratios({"onnx": {"http": {"p50_ms": 1.0}}}, "http.p50_ms") == {}


def test_time_calls_skips_the_warmup(bench):
    calls = []
    times = bench.time_calls(lambda: calls.append(1), count=5, warmup=3)
    assert len(calls) == 8 and len(times) == 5 and all(t >= 0 for t in times)
