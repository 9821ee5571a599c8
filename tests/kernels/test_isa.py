"""CRNN_MAX_SIMD: the cap on the SIMD level every kernel family runs at.

A process started with the variable set must run the capped code, not just
report it: each kernel module records which of its versions ran
(``isa_ran()``), and these tests train, predict, stream and step the
optimizer in such processes and read that record back, along with
``show_config`` and the results (which must match an uncapped process's to
the rounding of the element-wise functions)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crnn import _isa, _kernels

CPU = _kernels.cpu_isa_level()
CAPS = ["none", "avx2", "avx512", "avx512_bf16"]


def vec_for(level):
    """The element-wise version a process at `level` runs (builds without
    per-level versions run the baseline one)."""
    return min(level, 2) if _kernels.MULTIVERSION else 0

CHILD = r"""
import json, sys
import numpy as np
import crnn
from crnn import RNNRegressor, _kernel_hooks, _kernels, _optim, _step

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 9, 3)).astype(np.float32)
y = rng.normal(size=24).astype(np.float32)
out = {"isa_level": _kernels.isa_level(), "simd_level": _kernels.simd_level(),
       "vector_level": _kernels.vector_level(),
       "bf16": _kernels.bf16_supported(), "config": crnn._show.config_info()["simd"]}
preds = {}
for cell in ("lstm", "gru", "rnn"):
    est = RNNRegressor(cell=cell, hidden_size=40, batch_size=8, max_iter=2, n_jobs=2,
                       random_state=0, tol=0, n_iter_no_change=99).fit(X, y)
    preds[cell] = est.predict(X).tolist()
    est.stepper(n_streams=3).step(X[:3, 0])
x = np.linspace(-12, 12, 4001).astype(np.float32)
t = x.copy()
_kernel_hooks.fast_tanh_f32(t)
s = x.copy()
_kernel_hooks.fast_sigmoid_f32(s)
out["tanh"] = t.tolist()
out["sigmoid"] = s.tolist()
out["preds"] = preds
out["ran"] = {"kernels": _kernels.isa_ran(), "optim": _optim.isa_ran(), "step": _step.isa_ran(),
             "hooks": _kernel_hooks.isa_ran()}
try:
    RNNRegressor(hidden_size=8, max_iter=1, compute_dtype="bfloat16").fit(X, y)
    out["bf16_fit"] = "ok"
    out["ran_after_bf16"] = _kernels.isa_ran()
except ValueError as e:
    out["bf16_fit"] = str(e)
print(json.dumps(out))
"""


def run_child(cap):
    env = dict(os.environ)
    env.pop("CRNN_MAX_SIMD", None)
    if cap is not None:
        env["CRNN_MAX_SIMD"] = cap
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uncapped():
    return run_child(None)


def test_parse():
    assert _isa.parse(None) == _isa.parse("") == _isa.parse("  ") == 3
    assert [_isa.parse(c) for c in CAPS] == [0, 1, 2, 3]
    assert _isa.parse(" AVX2 ") == 1 and _isa.parse("Avx512_BF16") == 3
    for bad in ("avx", "sse4", "avx-512", "2", "avx2,fma", "native"):
        with pytest.raises(ValueError, match="CRNN_MAX_SIMD=.*none, avx2, avx512, avx512_bf16"):
            _isa.parse(bad)


def test_value_shown_as_parsed():
    """show_config shows the value stripped, as it was parsed."""
    env = dict(os.environ, CRNN_MAX_SIMD=" AVX2\n")
    code = ("import crnn, io, json; b = io.StringIO(); i = crnn.show_config(file=b); "
            "print(json.dumps([i['simd'], b.getvalue()]))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    simd, text = json.loads(res.stdout.strip().splitlines()[-1])
    assert simd["CRNN_MAX_SIMD"] == "AVX2" and simd["level"] == min(1, CPU)
    line = [ln for ln in text.splitlines() if ln.startswith("SIMD level:")]
    assert len(line) == 1 and line[0].endswith("CRNN_MAX_SIMD=AVX2)")


def test_unknown_value_refused_at_import():
    env = dict(os.environ, CRNN_MAX_SIMD="avx3")
    res = subprocess.run([sys.executable, "-c", "import crnn"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode != 0
    assert "CRNN_MAX_SIMD='avx3' is not a SIMD level" in res.stderr


def test_uncapped_runs_the_cpus_best(uncapped):
    assert uncapped["isa_level"] == CPU
    vec = vec_for(CPU)
    assert uncapped["vector_level"] == vec
    ran = uncapped["ran"]
    assert ran["kernels"]["vector"] == [vec] and ran["optim"]["vector"] == [vec]
    assert ran["step"]["vector"] == [vec] and ran["hooks"]["vector"] == [vec]
    assert ran["kernels"]["products"] == ([] if CPU == 0 else [min(CPU, 2)])
    assert uncapped["config"]["CRNN_MAX_SIMD"] is None


@pytest.mark.parametrize("cap", CAPS)
def test_capped_process_runs_the_capped_kernels(cap, uncapped):
    level = min(_isa.LEVELS[cap], CPU)
    got = run_child(cap)
    assert got["isa_level"] == level and got["simd_level"] == min(level, 2)
    assert got["config"] == {"level": level, "name": _isa.NAMES[level],
                             "cpu": _isa.NAMES[CPU], "CRNN_MAX_SIMD": cap}
    ran = got["ran"]
    # every family ran at the capped level and at no other
    vec = vec_for(level)
    assert got["vector_level"] == vec
    # (hooks: the test-only crnn._kernel_hooks, which ran the tanh and sigmoid
    # below: its own copy of the kernels, capped the same way)
    for module in ("kernels", "optim", "step", "hooks"):
        assert ran[module]["vector"] == [vec], (module, ran)
    assert ran["kernels"]["products"] == ([] if level == 0 else [min(level, 2)])
    assert ran["step"]["products"] == ([] if level == 0 else [min(level, 2)])
    assert ran["kernels"]["bf16"] == []
    # bfloat16 products only at level 3
    assert got["bf16"] == (level == 3)
    if level == 3:
        assert got["bf16_fit"] == "ok" and got["ran_after_bf16"]["bf16"] == [3]
    else:
        assert "bfloat16 compute needs" in got["bf16_fit"]
        # where the CPU has it, the message blames the cap, not the CPU
        assert ("CRNN_MAX_SIMD" in got["bf16_fit"]) == (CPU == 3), got["bf16_fit"]
    # the same functions and models, to the rounding of the vector math
    x = np.linspace(-12, 12, 4001).astype(np.float32)
    np.testing.assert_allclose(got["tanh"], np.tanh(x.astype(np.float64)), rtol=4e-7,
                               atol=1e-37)
    np.testing.assert_allclose(got["sigmoid"], 1 / (1 + np.exp(-x.astype(np.float64))),
                               rtol=4e-7, atol=1e-37)
    for cell, p in got["preds"].items():
        np.testing.assert_allclose(p, uncapped["preds"][cell], rtol=2e-4, atol=2e-5,
                                   err_msg=cell)
