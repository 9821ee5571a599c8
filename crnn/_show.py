"""crnn.show_config(): what this installation is built with and will use."""
import os
import platform
import sys

_OPENMP_SPECS = {201107: "3.1", 201307: "4.0", 201511: "4.5", 201811: "5.0", 202011: "5.1",
                 202111: "5.2"}


def config_info():
    """The facts show_config prints, as a dict."""
    import numpy
    import scipy
    import sklearn

    from . import _isa, _kernels, _openmp
    from ._nn.threads import cpu_count, effective_n_threads, threadpool_controller
    from ._version import __version__

    build = _openmp.build_info()
    libs = threadpool_controller().info()
    openmp_libs = [lib for lib in libs if lib.get("user_api") == "openmp"]
    blas_libs = [lib for lib in libs if lib.get("user_api") == "blas"]
    cpu, level = _kernels.cpu_isa_level(), _kernels.isa_level()
    return {
        "crnn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "dependencies": {"numpy": numpy.__version__, "scipy": scipy.__version__,
                         "scikit-learn": sklearn.__version__},
        "compiler": build["compiler"],
        "openmp": {
            "enabled": _openmp.openmp_enabled(),
            "spec": _OPENMP_SPECS.get(build["openmp_spec"], str(build["openmp_spec"] or "-")),
            "runtime": [lib.get("filepath") for lib in openmp_libs],   # every one loaded
        },
        "threads": {"n_jobs=None": effective_n_threads(None), "usable cores": cpu_count(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "simd": {"level": level, "name": _isa.NAMES[level], "cpu": _isa.NAMES[cpu],
                 _isa.ENV: _isa.VALUE},
        "blas": [{k: lib.get(k) for k in ("internal_api", "version", "num_threads",
                                          "threading_layer", "architecture", "filepath")}
                 for lib in blas_libs],
    }


def show_config(file=None):
    """Print the version of crnn and of its dependencies, the compiler and
    OpenMP runtime its kernels were built with, the threads it will use, the
    SIMD level the kernels run at (the CPU's best, capped by the environment
    variable ``CRNN_MAX_SIMD``) and the BLAS in use (as
    numpy.show_config / sklearn.show_versions do).

    Parameters
    ----------
    file : file-like, default=None
        Where to print (default: sys.stdout).

    Returns
    -------
    info : dict
        The same facts, as a dict.

    Examples
    --------
    >>> import crnn
    >>> info = crnn.show_config()  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    crnn: ...
    threads: ...
    SIMD level: ...
    >>> info["crnn"] == crnn.__version__
    True
    >>> sorted(info["simd"])
    ['CRNN_MAX_SIMD', 'cpu', 'level', 'name']
    """
    from . import _isa

    info = config_info()
    out = file or sys.stdout

    def line(key, value, indent=0):
        print(f"{' ' * indent}{key + ':':<18} {value}", file=out)

    line("crnn", info["crnn"])
    line("python", f"{info['python']} ({info['platform']})")
    for name, version in info["dependencies"].items():
        line(name, version)
    line("compiler", info["compiler"])
    omp = info["openmp"]
    line("OpenMP", (f"on, specification {omp['spec']}" if omp["enabled"] else "off")
         + (f"; runtimes loaded: {', '.join(omp['runtime'])}" if omp["runtime"] else ""))
    t = info["threads"]
    line("threads", f"{t['n_jobs=None']} (n_jobs=None), usable cores {t['usable cores']}, "
         f"OMP_NUM_THREADS={t['OMP_NUM_THREADS']}")
    simd = info["simd"]
    cap = simd[_isa.ENV]
    line("SIMD level", f"{simd['level']}: {simd['name']} (CPU: {simd['cpu']}; "
         f"{_isa.ENV}={cap if cap is not None else 'unset'})")
    for lib in info["blas"]:
        line("BLAS", f"{lib['internal_api']} {lib['version']} ({lib['threading_layer']}, "
             f"{lib['architecture']}), {lib['filepath']}")
    return info
