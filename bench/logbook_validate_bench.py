#!/usr/bin/env python3
"""CPU time of validating one 50,000-record logbook write, the two ways the API can take.

* model: ``records.from_json(raw)``, ``LogbookWrite.model_validate_json`` on the request bytes
  (pydantic-core) and the typed columns (what every valid write costs);
* usual: ``api.payload.loads(raw)`` (orjson) and ``records.validate(records)``, the path a body
  the model refuses takes (timed here on the same valid bodies, for comparison).

Three bodies: float samples with epoch-ms timestamps (what ``bench/logbook_bench.py`` sends),
long samples with ISO-8601 timestamps, geo_point samples. Median of ``--repeat`` runs, process
CPU time (less sensitive than wall time to other work on the machine), the garbage collector
paused as the write endpoint does.

    .venv/bin/python bench/logbook_validate_bench.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.logbook import records
from api.payload import loads

N = records.MAX_BATCH
START_MS = 1594289000000


def body(ts, field_type, value) -> bytes:
    return json.dumps(
        {
            "device_id": "bench",
            "records": [
                {
                    "ts": ts(i),
                    "field": "obd.bat.voltage",
                    "field_type": field_type,
                    "value": value(i),
                }
                for i in range(N)
            ],
        }
    ).encode()


BODIES = {
    "float, epoch-ms ts": body(lambda i: START_MS + i * 1000, "float", lambda i: 12 + i % 100 / 7),
    "long, ISO-8601 ts": body(lambda i: "2020-07-09T10:11:53.811839Z", "long", lambda i: i),
    "geo_point, epoch-ms ts": body(
        lambda i: START_MS + i, "geo_point", lambda i: {"lat": 57.0, "lon": 9.9}
    ),
}


def cpu_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(f"{N:,} records per body, median of {args.repeat}, load average {os.getloadavg()[0]:.2f}")
    gc.disable()
    for name, raw in BODIES.items():
        assert records.from_json(raw) is not None
        model = cpu_ms(lambda raw=raw: records.from_json(raw), args.repeat)
        usual = cpu_ms(lambda raw=raw: records.validate(loads(raw)["records"]), args.repeat)
        print(f"{name:24s} model {model:6.1f} ms CPU   usual (orjson + rules) {usual:6.1f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
