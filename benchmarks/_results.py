"""Writes a benchmark's results JSON: its parts, the summary and the machine
(shared, so times are indicative), then prints the summary."""

import json
import os

from keras_tl.reports import machine_info


def write_results(path, summary, **parts):
    """Writes `{**parts, "summary": summary, "machine": ...}` to `path`."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(parts, summary=summary,
                       machine=dict(machine_info(), note="shared machine; times are indicative")),
                  f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")
