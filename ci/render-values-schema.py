#!/usr/bin/env python3
"""Write chart/values.schema.json with the coordinator and worker config schemas embedded verbatim.

`properties.config` becomes an exact copy of schemas/config.schema.json and
`properties.worker.properties.config` one of schemas/worker-config.schema.json. Each copy keeps its
`$id`, which makes it an embedded schema resource: its internal `$ref: #/$defs/...` resolve against the
copy itself, in Helm's validator as in any JSON Schema 2020-12 validator. Everything else in
values.schema.json is edited by hand. `--check` exits 1, changing nothing, when the file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VALUES_SCHEMA = ROOT / "chart" / "values.schema.json"
CONFIG_SCHEMA = ROOT / "schemas" / "config.schema.json"
WORKER_SCHEMA = ROOT / "schemas" / "worker-config.schema.json"


def render(values_schema: dict[str, object]) -> str:
    """Return values.schema.json's text with both config schemas embedded."""
    properties = values_schema["properties"]
    assert isinstance(properties, dict)
    properties["config"] = json.loads(CONFIG_SCHEMA.read_text())
    if WORKER_SCHEMA.exists():
        worker = properties["worker"]
        assert isinstance(worker, dict)
        worker["properties"]["config"] = json.loads(WORKER_SCHEMA.read_text())
    return json.dumps(values_schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if chart/values.schema.json is stale")
    args = parser.parse_args()
    current = VALUES_SCHEMA.read_text()
    rendered = render(json.loads(current))
    if args.check:
        if rendered != current:
            print(f"{VALUES_SCHEMA} is stale; run: python3 ci/render-values-schema.py", file=sys.stderr)
            return 1
        return 0
    VALUES_SCHEMA.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
