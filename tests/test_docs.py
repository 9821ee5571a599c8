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


# --- tools/check_pages.py: the headless-Chromium check of the built site ---

def _check_pages():
    import importlib.util
    import shutil
    path = Path(__file__).resolve().parents[1] / "tools" / "check_pages.py"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path.exists() or chromium is None:
        pytest.skip("tools/check_pages.py or Chromium is not here")
    spec = importlib.util.spec_from_file_location("check_pages", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, chromium


_PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_check_pages_finds_each_kind_of_problem(tmp_path):
    """The checker passes a clean page and names every problem of broken ones,
    so CI's run of it on the built site can fail."""
    mod, chromium = _check_pages()
    (tmp_path / "fig.png").write_bytes(_PNG)
    (tmp_path / "favicon.ico").write_bytes(_PNG)
    ok = '<html><body><img src="fig.png"><script>console.log("fine")</script></body></html>'
    pages = {
        "good.html": ok,
        "console.html": '<html><body><script>console.error("boom")</script></body></html>',
        "throws.html": '<html><body><script>undefinedName()</script></body></html>',
        "image.html": '<html><body><img src="missing.png"></body></html>',
        "outside.html": '<html><body><script src="https://example.invalid/x.js"></script>'
                        '</body></html>',
    }
    pages["late.html"] = ('<html><body><script>setTimeout(() => console.error("late"), 150)'
                          '</script></body></html>')
    pages["hangs.html"] = "<html><body><script>while (true) {}</script></body></html>"
    (tmp_path / "auto_examples").mkdir()
    pages["auto_examples/plot_nofigure.html"] = ok.replace("fig.png", "../fig.png")
    pages["auto_examples/plot_figure.html"] = (
        '<html><body><img class="sphx-glr-single-img" src="../fig.png"></body></html>')
    for name, html in pages.items():
        (tmp_path / name).write_text(html)
    n, n_images, n_figures, failures = mod.check(tmp_path, chromium, timeout=5)
    assert n == len(pages)
    assert set(failures) == set(pages) - {"good.html", "auto_examples/plot_figure.html"}
    text = {k: " ".join(v) for k, v in failures.items()}
    assert "console.error: boom" in text["console.html"]
    assert "undefinedName" in text["throws.html"]
    assert "image not rendered: missing.png" in text["image.html"]
    assert "request leaves the site: https://example.invalid/x.js" in text["outside.html"]
    assert failures["auto_examples/plot_nofigure.html"] == [
        "gallery example without a rendered figure"]
    assert text["late.html"] == "console.error: late"
    assert failures["hangs.html"] == ["did not load within 5 s"]
    assert n_figures == 1 and n_images == 3


# --- the user guide's code: every ```python block runs, in page order ---

GUIDE = API.parent / "user_guide"


def _python_blocks(page):
    """The ```python blocks of a MyST page, less those whose first line is
    '# not run' (a cluster address, a shell, Ctrl-C)."""
    blocks, block = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if block is None:
            if line.strip() == "```python":
                block = []
        elif line.strip() == "```":
            if not block or block[0].strip() != "# not run":
                blocks.append("\n".join(block))
            block = None
        else:
            block.append(line)
    assert block is None, f"{page.name}: an unclosed code block"
    return blocks


def _skip_unless_runnable(blocks):
    """Skip a page whose code needs what this environment lacks: a module it
    imports (torch, dask, sklearn.callback of scikit-learn >= 1.9: the README's
    test command installs neither torch nor, in CI's scikit-learn 1.8 leg,
    dask) or the espeak-ng program (the spoken digits)."""
    import importlib.util
    import shutil
    for code in blocks:
        for m in re.finditer(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))",
                             code, re.M):
            module = m.group(1) or m.group(2)
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:          # a parent package is missing
                found = False
            if not found:
                pytest.skip(f"the page imports {module}, which is not installed")
        if "make_spoken_digits(" in code and shutil.which("espeak-ng") is None:
            pytest.skip("the page speaks digits with espeak-ng, which is not installed")


@pytest.mark.parametrize("page", sorted(p.name for p in GUIDE.glob("*.md")))
def test_user_guide_code_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib").use("Agg")
    blocks = _python_blocks(GUIDE / page)
    _skip_unless_runnable(blocks)
    monkeypatch.chdir(tmp_path)            # files a page writes land here
    namespace = {"__name__": f"user_guide_{page[:-3]}"}
    try:
        import copy

        import dask.config
        dask_config = copy.deepcopy(dask.config.config)
    except ImportError:
        dask_config = None
    try:
        for k, code in enumerate(blocks):
            try:
                exec(compile(code, f"{page}, block {k + 1}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(
                    f"{page}, code block {k + 1} fails: {exc!r}\n{code}") from exc
    finally:
        if dask_config is not None:      # a page's dask.config.set stays on the page
            dask.config.config.clear()
            dask.config.config.update(dask_config)


def test_user_guide_skips_only_for_what_is_missing():
    """The skip rule reads the pages' imports: a page that imports nothing
    missing is run, one that imports a missing module is skipped."""
    _skip_unless_runnable(["import numpy as np\nfrom sklearn.base import clone"])
    with pytest.raises(pytest.skip.Exception, match="no_such_module_xyz"):
        _skip_unless_runnable(["x = 1\nfrom no_such_module_xyz.sub import thing"])
