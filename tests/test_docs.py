"""The documentation's API reference (docs/api.rst) lists every public
name: the names of crnn.__all__ and of the public modules' __all__ (and
plotting's functions), and nothing that is not one.  Skipped where docs/
is absent (the wheel's test run, outside the source tree)."""
import inspect
import re
from pathlib import Path

import pytest

import crnn
import crnn.datasets
import crnn.metrics
import crnn.plotting

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
pytestmark = pytest.mark.skipif(not API.exists(), reason="docs/ is not here")


def _listed():
    """{module: names} of the autosummary entries of docs/api.rst."""
    out, module = {}, None
    for line in API.read_text().splitlines():
        m = re.match(r"^\.\. currentmodule:: (\S+)", line)
        if m:
            module = m.group(1)
        elif re.match(r"^   [A-Za-z_]\w*$", line):
            out.setdefault(module, set()).add(line.strip())
    return out


def _public():
    plotting = {n for n, f in vars(crnn.plotting).items()
                if inspect.isfunction(f) and f.__module__ == "crnn.plotting"
                and not n.startswith("_")}
    return {
        "crnn": set(crnn.__all__) - {"__version__"},
        "crnn.datasets": set(crnn.datasets.__all__),
        "crnn.metrics": set(crnn.metrics.__all__),
        "crnn.plotting": plotting,
    }


def test_every_public_name_has_an_api_page():
    listed, public = _listed(), _public()
    try:
        import crnn.dask
    except ImportError:              # dask absent: crnn.dask does not import
        listed.pop("crnn.dask")
    else:
        public["crnn.dask"] = set(crnn.dask.__all__)
    assert listed == public
