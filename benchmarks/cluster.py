"""Photos per second on a Ray cluster of 1 and 2 local nodes against the local command, in one run.

    python -m benchmarks.cluster [FOLDER] [--repeat N]

FOLDER defaults to ../shared/eval/images. Each run anonymises every photo of FOLDER into a
fresh folder: the local command (one process), then `--ray` on a loopback cluster of 1 node
and of 2 nodes (one CPU each, started with `ray start`). Prints the median seconds of each,
photos per second, and the cluster's overhead per photo against the local command. On a
machine of 2 cores, 2 nodes cannot beat the local command by much: the local command already
uses both cores (ONNX Runtime threads, reads and writes beside detection). On a real cluster,
throughput grows with the number of worker CPUs, as long as the shared folder keeps up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.cluster import LoopbackCluster

ROOT = Path(__file__).resolve().parent.parent


def _timed(args: list, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", *map(str, args)], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT.parent / "shared" / "eval" / "images")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    photos = sum(1 for p in args.folder.iterdir() if not p.name.startswith("."))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = iter(range(10_000))
        results["local"] = [_timed(["anonymize", args.folder, "--out", work / f"out{next(runs)}"])
                            for _ in range(args.repeat)]
        for nodes in (1, 2):
            (work / f"ray{nodes}").mkdir()
            cluster = LoopbackCluster(nodes, work / f"ray{nodes}")
            try:
                results[f"{nodes} node(s)"] = [
                    _timed(["anonymize", args.folder, "--out", work / f"out{next(runs)}", "--ray", cluster.address],
                           cluster.environment | {"PYTHONPATH": str(ROOT)}) for _ in range(args.repeat)]
            finally:
                cluster.stop()
    local = statistics.median(results["local"])
    print(f"{photos} photos, median of {args.repeat} runs, whole command (start-up included)")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:>10}: {median:6.1f} s  {photos / median:5.2f} photos/s  "
              f"overhead {1000 * (median - local) / photos:+6.0f} ms/photo against local")


if __name__ == "__main__":
    main()
