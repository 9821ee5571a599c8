"""Validate the release-wheel configuration, which only runs on hosted CI:
[tool.cibuildwheel] in pyproject.toml against cibuildwheel's own JSON schema,
the build identifiers it selects on every platform, and the workflow file
(YAML that parses, with the jobs and the cibuildwheel version expected).

Run by .ci/wheel.sh with cibuildwheel, jsonschema and pyyaml installed.
"""
import json
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

import cibuildwheel

root = Path(__file__).resolve().parents[1]
config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
schema = json.loads(resources.files("cibuildwheel").joinpath(
    "resources/cibuildwheel.schema.json").read_text())
jsonschema.validate(config, schema)

expected = {
    ("linux", "x86_64"): "manylinux_x86_64", ("linux", "aarch64"): "manylinux_aarch64",
    ("macos", "x86_64"): "macosx_x86_64", ("macos", "arm64"): "macosx_arm64",
    ("windows", "AMD64"): "win_amd64",
}
for (platform, arch), tag in expected.items():
    out = subprocess.run([sys.executable, "-m", "cibuildwheel", "--platform", platform,
                          "--archs", arch, "--print-build-identifiers"], cwd=root,
                         capture_output=True, text=True, check=True).stdout.split()
    want = [f"cp3{v}-{tag}" for v in range(10, 15)]
    assert out == want, (platform, arch, out)

workflow = yaml.safe_load((root / ".github/workflows/wheels.yml").read_text())
jobs = workflow["jobs"]
assert {"wheels", "sdist", "publish"} <= set(jobs), sorted(jobs)
oses = jobs["wheels"]["strategy"]["matrix"]["os"]
assert any("arm" in o for o in oses) and any(o.startswith("macos") for o in oses) \
    and any(o.startswith("windows") for o in oses), oses
uses = [s["uses"] for s in jobs["wheels"]["steps"] if "uses" in s]
pinned = [u for u in uses if u.startswith("pypa/cibuildwheel@")]
assert pinned == [f"pypa/cibuildwheel@v{cibuildwheel.__version__}"], (pinned,
                                                                      cibuildwheel.__version__)
print(f"release config OK: cibuildwheel {cibuildwheel.__version__}, "
      f"{len(expected) * 5} wheels on {len(oses)} runners")
