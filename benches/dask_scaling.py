"""crnn on a dask.distributed LocalCluster: batch inference and grid search
with 1 and 2 worker processes (1 thread each), each worker's CPU use, and a
paper estimate for 16 and 64 workers from the measured per-task costs.

    python benches/dask_scaling.py [--quick] [--json out.json]

Run it on an otherwise idle machine: it measures wall times.
"""
import argparse
import json
import math
import os
import time
import warnings

import numpy as np


def _worker_cpu(client):
    """{worker address: process CPU seconds (user + system)} on every worker."""
    def cpu():
        t = os.times()
        return t.user + t.system
    return client.run(cpu)


def _inference(client, model, n, T, F, chunk):
    import dask.array as da
    from distributed import get_task_stream, wait

    import crnn.dask as cdask

    X = da.random.default_rng(0).standard_normal((n, T, F), chunks=(chunk, T, F),
                                                  dtype=np.float32).persist()
    wait(X)                                # the data lives on the workers, as if read there
    cdask.predict(model, X[:chunk]).compute()                             # warm-up
    cpu0 = _worker_cpu(client)
    with get_task_stream(client) as ts:
        t0 = time.perf_counter()
        labels = cdask.predict(model, X).compute()
        wall = time.perf_counter() - t0
    cpu1 = _worker_cpu(client)
    tasks = [t for t in ts.data if "_apply_block" in str(t["key"])]
    busy = [sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
            for t in tasks]
    assert len(labels) == n
    return {"wall_s": wall, "seq_per_s": n / wall, "tasks": len(tasks),
            "task_compute_s_mean": float(np.mean(busy)),
            "worker_cpu_per_wall": {w: (cpu1[w] - cpu0[w]) / wall for w in cpu1}}


_GRID = {"hidden_size": [32, 64], "learning_rate_init": [1e-2, 3e-3]}     # x 3 folds


def _grid_estimator(n_jobs):
    from crnn import RNNClassifier
    return RNNClassifier(cell="lstm", hidden_size=32, max_iter=8, batch_size=64,
                         random_state=0, n_jobs=n_jobs)


def _grid_search(client, X, y, n_jobs_est):
    import joblib
    from sklearn.model_selection import GridSearchCV

    # joblib's dask backend counts the cluster's threads as its n_jobs, whatever
    # n_jobs says: with 1 worker thread in all, joblib runs the search in this
    # process (sequentially), not on the worker
    search = GridSearchCV(_grid_estimator(n_jobs_est), _GRID, cv=3, n_jobs=-1, refit=False)
    if client is None:
        search.set_params(n_jobs=1)
        t0 = time.perf_counter()
        search.fit(X, y)
        return {"wall_s": time.perf_counter() - t0, "fits": 12}
    cpu0 = _worker_cpu(client)
    t0 = time.perf_counter()
    with joblib.parallel_config(backend="dask"):
        search.fit(X, y)
    wall = time.perf_counter() - t0
    cpu1 = _worker_cpu(client)
    return {"wall_s": wall, "fits": 12,
            "worker_cpu_per_wall": {w: (cpu1[w] - cpu0[w]) / wall for w in cpu1},
            "mean_test_score": search.cv_results_["mean_test_score"].tolist()}


def _one_fit_seconds(X, y):
    """One fit of the search (2/3 of the data, hidden 64) and the refit (all of it)."""
    est = _grid_estimator(1).set_params(hidden_size=64)
    t0 = time.perf_counter()
    est.fit(X[: 2 * len(X) // 3], y[: 2 * len(X) // 3])
    t1 = time.perf_counter()
    est.fit(X, y)
    return t1 - t0, time.perf_counter() - t1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    from distributed import Client, LocalCluster

    from crnn import RNNClassifier

    n, T, F, chunk = (4000, 20, 8, 500) if a.quick else (40000, 50, 16, 2000)
    gn = 600 if a.quick else 3000
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((512, T, F)).astype(np.float32)
    model = RNNClassifier(cell="lstm", hidden_size=64, max_iter=1, random_state=0,
                          n_jobs=1).fit(Xs, Xs[:, :, 0].mean(1) > 0)
    Xg = rng.standard_normal((gn, 30, 8)).astype(np.float32)
    yg = (Xg[:, :, 0].mean(1) + 0.3 * Xg[:, -1, 1] > 0).astype(int)

    # baselines in this process: the same model's predict, 1 thread and all cores
    Xl = np.random.default_rng(0).standard_normal((n // 4, T, F)).astype(np.float32)
    local = {}
    for nj in (1, None):
        m = RNNClassifier(cell="lstm", hidden_size=64, max_iter=1, random_state=0,
                          n_jobs=nj).fit(Xs, Xs[:, :, 0].mean(1) > 0)
        m.predict(Xl[:chunk])
        t0 = time.perf_counter()
        m.predict(Xl)
        local[f"n_jobs={nj}"] = len(Xl) / (time.perf_counter() - t0)
    res = {"sizes": {"n": n, "T": T, "F": F, "chunk": chunk, "hidden": 64, "cell": "lstm",
                     "grid_n": gn},
           "cpu": os.cpu_count(), "local_predict_seq_per_s": local,
           "local_grid_search": _grid_search(None, Xg, yg, 1),
           "workers": {}}
    res["one_fit_s"], res["refit_s"] = _one_fit_seconds(Xg, yg)
    for W in (1, 2):
        with LocalCluster(n_workers=W, threads_per_worker=1, processes=True,
                             dashboard_address=None) as cluster, Client(cluster) as client:
            t0 = time.perf_counter()
            client.run(lambda: __import__("crnn"))
            out = {"import_s": time.perf_counter() - t0,
                   "inference": _inference(client, model, n, T, F, chunk),
                   "grid_search": _grid_search(client, Xg, yg, None)}
            if W == 2:     # what ignoring the budget costs: 2 threads per fit on 2 workers
                out["grid_search_n_jobs_2"] = _grid_search(client, Xg, yg, 2)
            res["workers"][W] = out
    _report(res)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1, default=str)


_SCHED_S = 1e-3      # scheduler time per task: "around 1 ms" (Dask's best-practices page)


def _estimate(res):
    """Paper estimate for W workers from the 2-worker run's per-task costs."""
    inf2 = res["workers"][2]["inference"]
    chunk = res["sizes"]["chunk"]
    tc = inf2["task_compute_s_mean"]
    # per-task time beyond the compute (scheduling, transfers), measured with 2 workers
    overhead = max(0.0, (inf2["wall_s"] * 2 - inf2["tasks"] * tc) / inf2["tasks"])
    chunk_mb = chunk * res["sizes"]["T"] * res["sizes"]["F"] * 4 / 1e6
    fits, fit, refit = res["workers"][2]["grid_search"]["fits"], res["one_fit_s"], res["refit_s"]
    rows = []
    for W in (16, 64):
        tasks_per_s = W / (tc + overhead)                # if compute-bound
        sched_cap = 1 / _SCHED_S                          # tasks/s one scheduler handles
        rate = min(tasks_per_s, sched_cap) * chunk
        # chunk size that keeps the scheduler under 20% busy
        min_chunk = math.ceil(chunk * W * _SCHED_S / 0.2 / (tc + overhead))
        rounds = math.ceil(fits / W)
        grid = rounds * fit + refit
        rows.append({
            "workers": W, "seq_per_s": rate, "tasks_per_s": tasks_per_s,
            "scheduler_share": tasks_per_s / sched_cap, "input_mb_s": rate / chunk * chunk_mb,
            "chunk_for_20pct_scheduler": min_chunk,
            "inference_bottleneck": ("scheduler" if tasks_per_s * _SCHED_S > 0.5 else
                                     "compute (input read rate next)"),
            "grid_rounds": rounds, "grid_s": grid, "grid_speedup": fits * fit / grid,
            "grid_bottleneck": (f"{fits} fits for {W} workers ({W - min(W, fits)} idle), then "
                                "the refit here" if fits < W else "the refit here")})
    return {"task_s": tc, "overhead_s": overhead, "chunk_mb": chunk_mb, "fit_s": fit,
            "refit_s": refit, "rows": rows}


def _report(res):
    s = res["sizes"]
    print(f"data: {s['n']} sequences x {s['T']} steps x {s['F']} features, chunks of "
          f"{s['chunk']}; model: {s['cell']} hidden {s['hidden']}; {res['cpu']} cores")
    lp = res["local_predict_seq_per_s"]
    print("\nbatch inference (sequences/s)")
    print(f"  in memory, this process, 1 thread      {lp['n_jobs=1']:10.0f}")
    print(f"  in memory, this process, all cores     {lp['n_jobs=None']:10.0f}")
    for W, out in res["workers"].items():
        inf = out["inference"]
        cpu = ", ".join(f"{v:.2f}" for v in inf["worker_cpu_per_wall"].values())
        print(f"  crnn.dask.predict, {W} worker(s) x 1 thread {inf['seq_per_s']:8.0f}   "
              f"({inf['tasks']} tasks, {inf['task_compute_s_mean'] * 1e3:.0f} ms each; "
              f"worker CPU s per wall s: {cpu})")
    print(f"\ngrid search, {res['workers'][1]['grid_search']['fits']} fits of "
          f"{s['grid_n'] * 2 // 3} sequences (seconds)")
    print(f"  sequential, this process, 1 thread     {res['local_grid_search']['wall_s']:8.2f}")
    for W, out in res["workers"].items():
        g = out["grid_search"]
        cpu = ", ".join(f"{v:.2f}" for v in g["worker_cpu_per_wall"].values())
        print(f"  dask backend, {W} worker(s), n_jobs=None {g['wall_s']:8.2f}   "
              f"(worker CPU s per wall s: {cpu})")
        if "grid_search_n_jobs_2" in out:
            g = out["grid_search_n_jobs_2"]
            cpu = ", ".join(f"{v:.2f}" for v in g["worker_cpu_per_wall"].values())
            print(f"  dask backend, {W} worker(s), n_jobs=2    {g['wall_s']:8.2f}   "
                  f"(worker CPU s per wall s: {cpu}; over budget)")
    e = _estimate(res)
    res["estimate"] = e
    print(f"\npaper estimate (inference: {e['task_s'] * 1e3:.0f} ms compute + "
          f"{e['overhead_s'] * 1e3:.1f} ms other per task of {s['chunk']} sequences, "
          f"{e['chunk_mb']:.1f} MB input; scheduler ~{_SCHED_S * 1e3:.0f} ms per task; "
          f"grid search: fit {e['fit_s']:.2f} s, refit {e['refit_s']:.2f} s)")
    for r in e["rows"]:
        print(f"  {r['workers']:3d} workers: inference {r['seq_per_s']:9.0f} seq/s, "
              f"{r['tasks_per_s']:5.0f} tasks/s = {100 * r['scheduler_share']:.0f}% of the "
              f"scheduler, input {r['input_mb_s']:5.0f} MB/s; bottleneck: "
              f"{r['inference_bottleneck']}; chunks of >= {r['chunk_for_20pct_scheduler']} "
              f"sequences keep the scheduler under 20%")
        print(f"               grid search: {r['grid_rounds']} round(s) of fits + refit "
              f"~{r['grid_s']:.1f} s ({r['grid_speedup']:.1f}x the sequential fits); "
              f"bottleneck: {r['grid_bottleneck']}")


if __name__ == "__main__":
    main()
