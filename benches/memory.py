"""Peak memory (RSS) of training and inference: crnn against torch.

    python benches/memory.py                       # large case, rnn/gru/lstm, all cores
    python benches/memory.py --cases mid large --cells lstm --threads 1

Each (library, cell, case, mode) runs in a fresh subprocess (Linux: it reads
/proc/self/status).  train: the resident set after the imports, then the data
and the model are built (impls.py's crnn_fns / torch_fns: a regressor,
float32, Adam) and 3 training steps run; the figure is the peak resident set
(VmHWM) minus that start: data, weights, optimizer state and every workspace
a step needed.  infer: the peak is reset once the model exists (crnn_fns
trains one step to create it) and the figure is the peak over 3 predicts
above the resident set at that point: what inference adds to a model at
rest.  Import sizes are not counted (torch's alone is hundreds of MB).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(lib, cell, case, mode, threads):
    sys.path.insert(0, HERE)
    import numpy  # noqa: F401
    if lib == "torch":
        import torch  # noqa: F401
    else:
        import crnn  # noqa: F401
    from impls import IMPLS
    import gc
    gc.collect()
    start = _status_kb("VmRSS")
    fns = IMPLS[lib](case, threads, cell)
    if mode == "infer":
        # crnn_fns trains one step to create its model: measure inference above
        # the model at rest (the peak reset through /proc/self/clear_refs)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        start = _status_kb("VmRSS")
    for _ in range(3):
        fns[mode]()
    peak = _status_kb("VmHWM")
    print(json.dumps({"start_mb": start / 1024, "peak_mb": peak / 1024,
                      "delta_mb": (peak - start) / 1024}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*", default=["large"])
    ap.add_argument("--cells", nargs="*", default=["rnn", "gru", "lstm"])
    ap.add_argument("--modes", nargs="*", default=["train", "infer"])
    ap.add_argument("--threads", type=int, default=None, help="default: all cores")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        lib, cell, case, mode, threads = a.child
        return child(lib, cell, case, mode, int(threads))
    sys.path.insert(0, HERE)
    from impls import CASES, all_cores
    threads = a.threads or all_cores()
    print(f"peak RSS, MB (train: above the imports; infer: above the model at rest); "
          f"{threads} thread(s), float32")
    print("\n| case (D, H, B, T) | cell | mode | crnn MB | torch MB | torch/crnn |")
    print("|---|---|---|---|---|---|")
    for case in a.cases:
        for cell in a.cells:
            for mode in a.modes:
                row = {}
                for lib in ("crnn", "torch"):
                    out = subprocess.run([sys.executable, __file__, "--child", lib, cell, case,
                                          mode, str(threads)], capture_output=True, text=True,
                                         check=True)
                    row[lib] = json.loads(out.stdout.strip().splitlines()[-1])["delta_mb"]
                print(f"| {case} {CASES[case]} | {cell} | {mode} | {row['crnn']:.1f} | "
                      f"{row['torch']:.1f} | {row['torch'] / row['crnn']:.2f} |")


if __name__ == "__main__":
    main()
