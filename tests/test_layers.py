"""The package's layers (CONTRIBUTING.md, "The package's layers"): each
folder of crnn imports only from the layers below it, read from the import
statements of every module.  A leaf module (one that imports nothing from
crnn, such as _base/params.py) may be imported from anywhere."""
import ast
from pathlib import Path

import crnn

# the package that runs the tests: the source tree's, or an installed wheel's
PACKAGE = Path(crnn.__file__).resolve().parent
# lower numbers are lower layers
RANKS = {
    "_kernels": 0, "_step": 0, "_optim": 0, "_smoothing": 0, "_conv": 0, "_openmp": 0, "_isa": 0,
    "_kernel_hooks": 0, "_version": 0, "plotting": 0,
    "_nn": 1,
    "_io": 2,
    "_base": 3,
    "_sequence": 4, "_text": 4, "_speech": 4,
    "_forecasting": 5, "_translation": 5, "_vision": 5,
    "datasets": 6, "metrics": 6, "dask": 6, "_cli": 6, "_show": 6,
    "__init__": 7,
    "__main__": 8,
    # the old module paths pickles name (re-exports only)
    "_estimators": 7, "_layout": 7, "_forecast": 7, "_lm": 7, "_transcriber": 7,
    "_seq2seq": 7, "_translator": 7,
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts


def _imports(path, parts):
    """The crnn modules a module imports, as tuples of names under crnn."""
    package = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            if node.module:
                out.add(tuple(target))
            else:
                out.update(tuple(target + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crnn."):
            out.add(tuple(node.module.split(".")[1:]))
    return {t for t in out if t}


def _layer(parts):
    return parts[0] if parts[0] in RANKS else "__init__"


def test_every_module_has_a_layer():
    for _, parts in _modules():
        assert parts[0] in RANKS, f"crnn/{'/'.join(parts)}.py is in no layer of RANKS"


def test_imports_go_down_the_layers():
    modules = dict((parts, path) for path, parts in _modules())
    leaves = {parts for parts, path in modules.items() if not _imports(path, parts)}
    wrong = []
    for parts, path in modules.items():
        here = _layer(parts)
        for target in _imports(path, parts):
            # a name imported from a package (from .. import _kernels) or a
            # module (from .layout import Layout): the module it lives in
            if target in modules or target + ("__init__",) in modules:
                module = target
            elif len(target) == 1 and target[0] in RANKS:       # an extension
                module = target
            else:
                module = target[:-1]
            there = _layer(module) if module else "__init__"
            if module in leaves or here == there:
                continue
            if RANKS[there] >= RANKS[here]:
                wrong.append(f"crnn/{'/'.join(parts)}.py imports crnn.{'.'.join(target)}")
    assert not wrong, "\n".join(wrong)


def test_nothing_in_crnn_imports_the_test_hooks():
    for path, parts in _modules():
        for target in _imports(path, parts):
            assert "_kernel_hooks" not in target, f"crnn/{'/'.join(parts)}.py imports it"


def test_the_old_module_paths_only_re_export_what_pickles_name():
    for old in ("_estimators", "_layout", "_forecast", "_lm", "_transcriber", "_seq2seq",
                "_translator"):
        tree = ast.parse((PACKAGE / f"{old}.py").read_text())
        body = [n for n in tree.body if not isinstance(n, ast.Expr)]
        assert [type(n) for n in body] == [ast.ImportFrom, ast.Assign], old
