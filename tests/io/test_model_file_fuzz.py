"""Every field of every estimator's model file, mutated (issue 24): a file
either loads into a model that works or is refused with ModelFileError.
The cases run in a child process (tests/support/model_file_fuzz.py) under a memory
limit and a per-case alarm, so that a crash or a hang fails this test
instead of ending the test run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")

WORKER = Path(__file__).resolve().parents[1] / "support" / "model_file_fuzz.py"


@pytest.mark.parametrize("seed,models", [
    (0, ["regressor", "regressor_unfitted", "classifier"]),
    (1, ["forecaster"]),
    (2, ["language_model", "translator", "transcriber"]),
])
def test_mutated_model_files_load_into_working_models_or_are_refused(seed, models):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(WORKER), str(seed), "250", *models],
                          capture_output=True, text=True, env=env, timeout=900)
    failures = [json.loads(line) for line in proc.stdout.splitlines()
                if line.startswith("{")]
    summary = [json.loads(line) for line in proc.stderr.splitlines()
               if line.startswith('{"total"')]
    shown = "\n".join(json.dumps(f) for f in failures[:20])
    assert proc.returncode == 0 and not failures, (
        f"exit {proc.returncode}, {len(failures)} failures:\n{shown}\n{proc.stderr[-3000:]}")
    assert summary and summary[0]["total"] >= 250 * len(models)     # the cases ran
