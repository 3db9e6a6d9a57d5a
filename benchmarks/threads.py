"""The demo's wall time with the CLI's thread choice, on an idle machine and on one kept busy (hardening issue,
item 25).

Three runs of ``pyrogen demo``, one after another: the machine idle (the default: the cores the 1-minute load
average leaves idle); then with one core kept busy by a spinning process started 75 s before (so the load
average sees it) -- once with the default, once with ``--threads`` set to every core (torch's own default).
Prints each run's seconds as the demo reports them.

    python benchmarks/threads.py        # about 7 minutes on 2 cores
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def demo(out: Path, *flags: str) -> float:
    cmd = [sys.executable, "-m", "pyrogen.cli", *flags, "demo", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return float(re.search(r"in (\d+) s", text).group(1))  # type: ignore[union-attr]


def main() -> int:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("idle, default threads", demo(Path(tmp, "a")), os.getloadavg()[0])]
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(75)
            load = os.getloadavg()[0]
            rows.append(("one core busy, default threads", demo(Path(tmp, "b")), load))
            load = os.getloadavg()[0]
            rows.append((f"one core busy, --threads {cores}", demo(Path(tmp, "c"), "--threads", str(cores)), load))
        finally:
            spinner.kill()
    for label, seconds, load in rows:
        print(f"{label:<36} {seconds:5.0f} s   (1-minute load before: {load:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
