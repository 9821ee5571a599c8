"""Compare two builds of crnn ("before" and "after" a change) in one interleaved run.

    python benches/compare_builds.py --before /work/base --after /work/main
    python benches/compare_builds.py --before A --after B --cell gru --cases small mid \\
        --threads 1 2 --modes train --rounds 9

Each of --before/--after is a source tree whose ``crnn`` package imports when
the tree is first on sys.path (an in-place build, or the checkout behind an
editable install: setuptools' editable finder sits after sys.path, so the
tree wins).  Each build runs in its own worker subprocess, started with the
tree first on sys.path and PYTHONPATH and as its working directory; the
header prints the ``crnn.__file__`` each worker resolved, and the run stops
if two different trees resolve to the same file.  Both workers build the same
work from one ``impls.py`` (this script's folder): ``crnn_fns(case, threads,
cell)``, i.e. ``RNNRegressor.partial_fit`` on one batch ("train") or
``predict`` ("infer").

The method is report.py's ``time_interleaved``, split over two processes:
each worker warms up and calibrates its repetitions to ~0.05 s per block;
then, round after round, the parent asks before and after in turn for one
block (the order swaps every other round), each block preceded by a 0.25 s
pause so the other process's OpenMP/BLAS threads go idle, and one untimed
call.  A time is the median over rounds of the mean seconds per call in a
block; after/before below 1 means the change made crnn faster.  Only one
worker runs at a time, so both see the same machine and the same noise.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from impls import CASES, MODES, thread_counts  # noqa: E402
from report import cpu_name  # noqa: E402

# The worker: commands on stdin, one JSON reply per line on its real stdout.
WORKER = r"""
import glob, json, os, sys, time
tree, benches = sys.argv[1], sys.argv[2]
sys.path[:] = [tree, benches] + [p for p in sys.path if p not in ("", ".", tree, benches)]
out, sys.stdout = sys.stdout, sys.stderr       # stray prints must not reach the pipe
def reply(**kw):
    out.write(json.dumps(kw) + "\n"); out.flush()
try:
    import crnn, impls
    so = glob.glob(os.path.join(os.path.dirname(crnn.__file__), "*.so"))
    built = max(map(os.path.getmtime, so), default=None)
    reply(file=os.path.realpath(crnn.__file__), version=getattr(crnn, "__version__", "?"),
          built=time.strftime("%Y-%m-%d %H:%M", time.localtime(built)) if so else "?")
except Exception as e:
    reply(error=f"{type(e).__name__}: {e}"); sys.exit(1)
fns = None
for line in sys.stdin:
    cmd, *a = line.split()
    try:
        if cmd == "setup":
            fns = impls.crnn_fns(a[0], int(a[1]), a[2]); reply(ok=True)
        elif cmd == "calib":
            fn = fns[a[0]]; fn(); t0 = time.perf_counter(); fn()
            reply(s=time.perf_counter() - t0)
        elif cmd == "time":
            fn, reps = fns[a[0]], int(a[1]); fn(); t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            reply(s=(time.perf_counter() - t0) / reps)
        elif cmd == "quit":
            break
    except Exception as e:
        reply(error=f"{type(e).__name__}: {e}")
"""


class Worker:
    """One build of crnn in its own process, driven over its stdin/stdout pipes."""

    def __init__(self, label, tree):
        self.label, self.tree = label, os.path.abspath(tree)
        env = dict(os.environ)
        extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([self.tree] + extra)
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, self.tree, HERE],
                                     cwd=self.tree, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"{self.label} worker ({self.tree}) died; see its stderr above")
        msg = json.loads(line)
        if "error" in msg:
            sys.exit(f"{self.label} worker ({self.tree}): {msg['error']}")
        return msg

    def ask(self, *cmd):
        self.proc.stdin.write(" ".join(map(str, cmd)) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(timeout=10)


def time_pair(workers, mode, rounds, target=0.05, cooldown=0.25):
    """Median seconds per call of `mode` in each worker, in interleaved rounds."""
    reps = {w.label: max(1, int(target / max(w.ask("calib", mode)["s"], 1e-6))) for w in workers}
    samples = {w.label: [] for w in workers}
    for r in range(rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):
            time.sleep(cooldown)
            samples[w.label].append(w.ask("time", mode, reps[w.label])["s"])
    return {k: float(np.median(v)) for k, v in samples.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="source tree of the baseline build")
    ap.add_argument("--after", required=True, help="source tree of the changed build")
    ap.add_argument("--cell", default="rnn", choices=["rnn", "gru", "lstm"])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", nargs="*", type=int, default=list(thread_counts()))
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)

    same_tree = os.path.realpath(args.before) == os.path.realpath(args.after)
    if same_tree:
        print("WARNING: --before and --after are the same tree (a noise check: "
              "ratios should be ~1.0)", file=sys.stderr)
    workers = [Worker("before", args.before), Worker("after", args.after)]
    try:
        b, a = workers[0].info, workers[1].info
        if b["file"] == a["file"] and not same_tree:
            sys.exit(f"both workers import the same crnn ({b['file']}): "
                     f"is {args.after} or {args.before} really a built crnn tree?")
        print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; numpy {np.__version__}; "
              f"cell {args.cell}; {args.rounds} interleaved rounds, float32")
        for label, info in (("before", b), ("after", a)):
            print(f"{label}: crnn {info['version']} from {info['file']} "
                  f"(.so built {info['built']})")
        print()
        head = "| case (D, H, B, T) | thr | mode | before ms | after ms | after/before |"
        print(head)
        print("|---" * (head.count("|") - 1) + "|", flush=True)
        for case in args.cases:
            for threads in args.threads:
                for w in workers:
                    w.ask("setup", case, threads, args.cell)   # exits on an error
                for mode in args.modes:
                    t = time_pair(workers, mode, args.rounds)
                    b_ms, a_ms = 1e3 * t["before"], 1e3 * t["after"]
                    print(f"| {case} {CASES[case]} | {threads} | {mode} | {b_ms:.3f} "
                          f"| {a_ms:.3f} | {a_ms / b_ms:.2f} |", flush=True)
    finally:
        for w in workers:
            w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
