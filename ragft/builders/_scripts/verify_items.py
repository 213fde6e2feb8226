"""Run each item's verification code under the NumPy on PYTHONPATH; print {"version": ..., "results": {id: result}}.

Reads a JSON list of {"id", "code"} on stdin. Each code runs in a fresh namespace with `np` and three helpers, and must
set `result` to a list. An exception becomes the string "error: ...". Free of ragft imports on purpose.
"""

import inspect
import json
import sys
import warnings

warnings.simplefilter("ignore")
import numpy as np  # noqa: E402


def _get(path):
    obj = np
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has(path):
    try:
        _get(path)
        return True
    except Exception:
        return False


def _accepts(path, name):
    """Does a call with `name=` get past the signature: a named parameter (not positional-only) or a `**kwargs`."""
    params = inspect.signature(_get(path)).parameters.values()
    named = any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
    return named or any(p.kind == p.VAR_KEYWORD for p in params)


def main():
    items = json.load(sys.stdin)
    results = {}
    for item in items:
        ns = {"np": np, "_get": _get, "_has": _has, "_accepts": _accepts}
        try:
            exec(item["code"], ns)
            results[item["id"]] = ns["result"]
        except Exception as e:  # the item's claim cannot be checked: the caller drops it
            results[item["id"]] = f"error: {type(e).__name__}: {e}"
    print(json.dumps({"version": np.__version__, "results": results}))


if __name__ == "__main__":
    main()
