"""Time to load the Dagster definitions, against the old cost measured in the same run.

The code location is loaded by every webserver, daemon and run worker start, so what it
imports is paid on each. Declaring the slice checks used to import pandas and pyarrow. The
anchor is that old cost: the same load with pandas and pyarrow imported first. Each
measurement is a fresh interpreter (nothing cached in sys.modules), the two kinds taken in
turn so that drift on the machine hits both alike; the medians are compared.

Usage: python benchmarks/definitions_load.py [--repeats N]
Exit 1 when the load is not lighter than the anchor or imports a data or ML library.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "pyarrow", "torch", "mlflow", "great_expectations", "sklearn")
LOAD = ("import json, sys, time\n"
        "start = time.perf_counter()\n"
        "{before}"
        "from platform_defs.definitions import defs\n"
        "defs()\n"
        "took = time.perf_counter() - start\n"
        f"print(json.dumps([took, [m for m in {HEAVY!r} if m in sys.modules]]))\n")
NOW = LOAD.format(before="")
ANCHOR = LOAD.format(before="import pandas, pyarrow\n")


def _measure(code: str, env: dict[str, str]) -> tuple[float, list[str]]:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True)
    took, heavy = json.loads(done.stdout.splitlines()[-1])
    return took, heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "dagster").mkdir(parents=True)
        # The children run in REPO with -c, so the repository is first on their sys.path.
        env = {**os.environ, "PLIMSOLL_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        for name in ("PLIMSOLL_PROFILE", "PLIMSOLL_MANIFESTS"):
            env.pop(name, None)
        _measure(NOW, env)  # warm the file cache and bytecode, for both kinds alike
        now, anchor, heavy = [], [], set()
        for _ in range(args.repeats):
            took, loaded = _measure(NOW, env)
            now.append(took)
            heavy.update(loaded)
            anchor.append(_measure(ANCHOR, env)[0])
    median_now, median_anchor = statistics.median(now), statistics.median(anchor)
    ratio = median_now / median_anchor
    print(f"definitions load, fresh interpreter, median of {args.repeats}:")
    print(f"  now (as the code location loads):          {median_now:.3f}s "
          f"(min {min(now):.3f}s, max {max(now):.3f}s)")
    print(f"  anchor (pandas + pyarrow imported first):  {median_anchor:.3f}s "
          f"(min {min(anchor):.3f}s, max {max(anchor):.3f}s)")
    print(f"  saved per load: {median_anchor - median_now:.3f}s")
    print(f"  data/ML libraries the load imports: {sorted(heavy) or 'none'}")
    print(f"  RATIO now / anchor = {ratio:.2f}   (target < 1)")
    return 0 if ratio < 1 and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
