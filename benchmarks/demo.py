"""The demo's numbers, and how they move with the CPU's kernels: ``pyrogen demo`` run once per
``ATEN_CPU_CAPABILITY`` (PyTorch's choice of vector kernels: ``default``, ``avx2``, ``avx512``), each in a
process of its own, its ``metrics.json`` read back.

The same seed rounds differently under different kernels, and a VAE trained 4000 steps amplifies it; the results
page shows each capability's row beside the others (a capability the CPU lacks falls back to the best it has,
which ``torch.backends.cpu.get_cpu_capability()`` reports in the row).

    python benchmarks/demo.py                               # avx2, default and avx512, one after another
    python benchmarks/demo.py --capabilities avx2           # one of them
    python benchmarks/demo.py --fast --capabilities default # a smoke run, nothing kept

The rows go to ``results/demo.json``, from which ``python benchmarks/pages.py`` writes the demo tables of the
results page.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import merged_rows, previous_rows, save_results

CAPABILITIES = ("avx2", "default", "avx512")


def _value(m: Any) -> Any:
    return round(m["value"], 4) if isinstance(m, dict) else m


def _ci(m: Any) -> list[float] | None:
    return [round(c, 4) for c in m["ci"]] if isinstance(m, dict) and "ci" in m else None


def demo_row(capability: str, fast: bool = False) -> dict[str, Any]:
    """``pyrogen demo`` under ``ATEN_CPU_CAPABILITY=capability``: its numbers, and the kernels torch used."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pyrogen.cli", "demo", "--quiet", "--out", tmp, *(["--fast"] if fast else [])]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())
        probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
        used = subprocess.run([sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True)
    flow, vae = metrics["realnvp_moons"], metrics["vae_digits"]
    row: dict[str, Any] = {"model": "demo", "data": capability, "kernels": used.stdout.strip()}
    row |= {f"realnvp_{k}": _value(flow[k]) for k in ("nll_nats", "nll_stderr", "mmd", "c2st")}
    row |= {f"realnvp_{k}_ci": _ci(flow[k]) for k in ("mmd", "c2st")}
    row |= {f"vae_{k}": _value(vae[k]) for k in ("elbo_nats", "nll_nats", "nll_stderr", "bits_per_dim", "k")}
    row |= {f"vae_{k}": _value(vae[k]) for k in ("active_units", "fid", "kid", "precision", "recall", "samples")}
    row |= {f"vae_{k}_ci": _ci(vae[k]) for k in ("fid", "kid", "precision", "recall")}
    row |= {"nuts_max_r_hat": round(metrics["nuts_latent"]["max_r_hat"], 3), "seconds": metrics["seconds"]}
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capabilities", nargs="+", choices=CAPABILITIES, default=list(CAPABILITIES))
    p.add_argument("--fast", action="store_true", help="the demo's few steps (a smoke run; nothing is kept)")
    args = p.parse_args(argv)
    rows = []
    for capability in args.capabilities:
        rows.append(demo_row(capability, args.fast))
        print(json.dumps(rows[-1]), flush=True)
    if not args.fast:
        save_results({"capabilities": merged_rows(previous_rows("capabilities"), rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
