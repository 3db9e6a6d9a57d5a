"""The demo's wall time with the CLI's thread choice, on an idle machine and on one kept busy (hardening issue,
item 25).

Three runs of ``pyrogen demo``, one after another: the machine idle (the default: the cores the 1-minute load
average leaves idle); then with one core kept busy by a spinning process started 75 s before (so the load
average sees it) -- once with the default, once with ``--threads`` set to every core (torch's own default).
Prints each run's seconds as the demo reports them, and keeps them in ``results/threads.json`` (with the 1-minute
load average before each run and the threads the CLI chose), from which ``benchmarks/pages.py`` writes the row of
``docs/results.md``.

    python benchmarks/threads.py        # about 7 minutes on 2 cores; run it on an otherwise idle machine
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import save_results


def demo(out: Path, *flags: str) -> float:
    cmd = [sys.executable, "-m", "pyrogen.cli", *flags, "demo", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return float(re.search(r"in (\d+) s", text).group(1))  # type: ignore[union-attr]


def row(case: str, threads: str, seconds: float, load: float) -> dict[str, Any]:
    return {"case": case, "threads": threads, "seconds": seconds, "load_before": round(load, 2)}


def main() -> int:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]
        rows = [row("idle", "the CLI's choice", demo(Path(tmp, "a")), load)]
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(75)
            load = os.getloadavg()[0]
            rows.append(row("one core busy", "the CLI's choice", demo(Path(tmp, "b")), load))
            load = os.getloadavg()[0]
            rows.append(row("one core busy", f"--threads {cores}", demo(Path(tmp, "c"), "--threads", str(cores)), load))
        finally:
            spinner.kill()
    for r in rows:
        print(f"{r['case']:<16} {r['threads']:<18} {r['seconds']:5.0f} s   (1-minute load before: {r['load_before']})")
    save_results({"demo": {"cores": cores, "runs": rows}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
