"""Time what every pipeline job pays before it computes: interpreter and import start-up.

Usage: ``python benchmarks/process_start.py [--repeats N]``. Each line runs in a fresh
interpreter and prints the median wall seconds over N runs: ``import torch``; the extra
``import torch._dynamo`` that any ``torch.optim`` step triggers (``otflows.optim.Adam``
avoids it); the extra ``import torchdiffeq`` (scipy; only dopri5 users load it); and the
imports of an OT-Flow training job. The default profile starts several hundred such jobs,
so these seconds multiply.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

SNIPPETS: dict[str, tuple[str, str]] = {
    # name: (setup run first, statement timed after it)
    "import torch": ("", "import torch"),
    "+ import torch._dynamo (torch.optim)": ("import torch", "import torch._dynamo"),
    "+ import torchdiffeq (scipy)": ("import torch", "import torchdiffeq"),
    "OT-Flow job imports (otflows.cli + otflow)": (
        "", "import otflows.cli, otflows.methods.otflow, otflows.training"),
}

_TIMER = ("import sys, time\n{setup}\nt = time.perf_counter()\n{stmt}\n"
          "print(time.perf_counter() - t)\n")


def _time(setup: str, stmt: str) -> float:
    code = _TIMER.format(setup=setup, stmt=stmt)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the median start-up cost of each snippet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, (setup, stmt) in SNIPPETS.items():
        times = [_time(setup, stmt) for _ in range(args.repeats)]
        print(f"{name:45s} {statistics.median(times):7.3f} s  "
              f"(min {min(times):.3f}, {args.repeats} runs)")


if __name__ == "__main__":
    main()
