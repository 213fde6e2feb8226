"""Print NumPy's public API as JSON lines: run as `python extract_numpy_api.py` with ONE NumPy version on PYTHONPATH.

Walks the public names of `numpy` and of its documented submodules, and the public methods of `numpy.ndarray`.
Kept deliberately free of ragft imports: it runs under whichever NumPy the caller put on the path.
"""

import inspect
import json
import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np  # noqa: E402

SUBMODULES = ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.polynomial", "numpy.ma", "numpy.char",
              "numpy.strings", "numpy.exceptions", "numpy.testing", "numpy.lib.stride_tricks"]


def kind_of(obj):
    if isinstance(obj, np.ufunc):
        return "ufunc"
    if inspect.isclass(obj):
        return "class"
    if inspect.ismodule(obj):
        return "module"
    if callable(obj):
        return "function"
    return "constant"


def signature_of(name, obj, kind):
    if kind == "ufunc":
        ins = ", ".join(f"x{i + 1}" for i in range(obj.nin)) if obj.nin > 1 else "x"
        return f"({ins}, /, out=None, *, where=True, casting='same_kind', order='K', dtype=None, subok=True)"
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def emit(qualname, obj, seen):
    kind = kind_of(obj)
    if kind == "module":
        return
    if kind == "constant":
        text = f"{qualname} = {obj!r}" if isinstance(obj, (int, float, complex, str)) else ""
    else:
        text = inspect.getdoc(obj) or ""
    target = getattr(obj, "__module__", None)
    real = f"{target}.{getattr(obj, '__name__', '')}" if target and kind != "constant" else ""
    rec = {"name": qualname, "kind": kind, "signature": signature_of(qualname, obj, kind), "docstring": text,
           "alias_of": seen.get(id(obj)) if id(obj) in seen and kind != "constant" else None, "defined_in": real}
    seen.setdefault(id(obj), qualname)
    print(json.dumps(rec))


def main():
    import importlib

    seen = {}
    for modname in SUBMODULES:
        try:
            mod = importlib.import_module(modname)
        except Exception:  # the submodule does not exist in this version
            continue
        names = set(getattr(mod, "__all__", None) or []) | set(dir(mod))
        for name in sorted(set(names)):
            if name.startswith("_"):
                continue
            try:
                obj = getattr(mod, name)
            except Exception:  # removed names raise AttributeError in 2.x
                continue
            emit(f"{modname}.{name}", obj, seen)
    for name in sorted(dir(np.ndarray)):
        if not name.startswith("_"):
            emit(f"numpy.ndarray.{name}", getattr(np.ndarray, name), seen)
    try:
        from numpy import _expired_attrs_2_0 as expired

        for name, advice in sorted(expired.__expired_attributes__.items()):
            print(json.dumps({"name": f"numpy.{name}", "kind": "removal_notice", "advice": advice}))
    except ImportError:
        pass
    print(json.dumps({"name": "__version__", "kind": "meta", "version": np.__version__}), file=sys.stderr)


if __name__ == "__main__":
    main()
