"""`python -m bench` (`make bench`): every benchmark at its default size, one after another.

Each prints its own figures beside its baseline (a real Central's figures for the
emulator, the naive pyodk + pandas pipeline for sync, pandas read_sql + to_csv for the API).
Run one alone for other sizes: `python -m bench.sync_bench --help`.
"""

from __future__ import annotations

import sys

from bench import api_bench, emulator_bench, sync_bench


def main() -> int:
    print("== emulator: OpenRosa accept and OData serve rates ==", flush=True)
    emulator_bench.main([])
    print("\n== sync: ours against pyodk get_table + pandas json_normalize + to_sql ==", flush=True)
    sync_bench.main([])
    print("\n== API: pages, indicators, exports against pandas read_sql + to_csv ==", flush=True)
    return api_bench.main([]) or 0


if __name__ == "__main__":
    sys.exit(main())
