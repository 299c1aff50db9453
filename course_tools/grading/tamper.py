"""Spot a submission that replaced the functions the hidden tests rely on.

A test such as ``assert np.allclose(answer, expected)`` passes for any answer
once a student's cell ran ``np.allclose = lambda *a, **k: True``. After each
test cell, the grader runs :data:`PROBE` in the kernel: it prints a
fingerprint (type, module, qualified name, a hash of the bytecode) of every
watched function, and the grader compares it with the fingerprint of the same
function in its own, untouched process. It also checks that the usual module
aliases (``np``, ``torch``, ...) still name the real modules.

This detects the ordinary ways of cheating the checks; it does not make the
kernel trustworthy (nothing in-process can). A flagged submission is kept
for a person to review, never silently scored.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

MARK = "__course_probe__"

WATCHED: dict[str, tuple[str, ...]] = {
    "builtins": ("isinstance", "abs", "len", "round", "all", "any", "float", "int", "sum", "max", "min",
                 "type", "hasattr", "getattr", "callable", "sorted", "set"),
    "math": ("isclose",),
    "numpy": ("allclose", "isclose", "array_equal", "all", "any", "abs", "asarray", "testing.assert_allclose",
              "testing.assert_array_equal", "testing.assert_array_almost_equal", "testing.assert_equal"),
    "torch": ("allclose", "isclose", "equal", "all", "any", "abs", "is_tensor", "as_tensor",
              "testing.assert_close", "Tensor.__eq__", "Tensor.allclose", "Tensor.item", "Tensor.tolist"),
    "course_utils.checks": ("check_tensor", "check_scalar", "check_close", "check_true"),
}
ALIASES = {"np": "numpy", "torch": "torch", "math": "math", "nn": "torch.nn", "F": "torch.nn.functional"}

_FINGERPRINT = '''
def _fingerprint(obj):
    import hashlib
    code = getattr(obj, "__code__", None)
    return [type(obj).__name__, getattr(obj, "__module__", None), getattr(obj, "__qualname__", None),
            hashlib.sha256(code.co_code).hexdigest()[:16] if code is not None else None]
'''

PROBE = _FINGERPRINT + f'''
def _course_probe(watched, aliases):
    import json, sys
    found = {{}}
    for module, names in watched.items():
        obj_module = sys.modules.get(module)
        if obj_module is None:
            continue
        for name in names:
            obj = obj_module
            try:
                for part in name.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                found[module + "." + name] = "missing"
                continue
            found[module + "." + name] = _fingerprint(obj)
    user = get_ipython().user_ns
    for alias, module in aliases.items():
        if alias in user and module in sys.modules and type(user[alias]).__name__ == "module":
            found["alias " + alias] = user[alias] is sys.modules[module]
    print({MARK!r} + json.dumps(found))
_course_probe({WATCHED!r}, {ALIASES!r})
del _course_probe, _fingerprint
'''


def _reference(key: str) -> Any:
    """The fingerprint of ``module.name`` in this (the grader's) process."""
    scope: dict[str, Any] = {}
    exec(_FINGERPRINT, scope)  # the very code the kernel runs
    module, _, name = key.partition(".")
    for candidate in sorted(WATCHED, key=len, reverse=True):
        if key.startswith(candidate + "."):
            module, name = candidate, key[len(candidate) + 1:]
            break
    obj: Any = importlib.import_module(module) if module not in sys.modules else sys.modules[module]
    for part in name.split("."):
        obj = getattr(obj, part)
    return json.loads(json.dumps(scope["_fingerprint"](obj)))


def changed(probe_output: str) -> list[str]:
    """What the probe's printout shows replaced: ``['numpy.allclose', 'alias np', ...]``.

    An unreadable printout counts as tampering too: the probe itself was interfered with.
    """
    line = next((ln for ln in probe_output.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        return ["the grader's integrity check (its output was suppressed)"]
    try:
        found = json.loads(line[len(MARK):])
    except json.JSONDecodeError:
        return ["the grader's integrity check (its output was altered)"]
    bad = []
    for key, value in found.items():
        if key.startswith("alias "):
            if value is not True:
                bad.append(key)
        elif value == "missing" or value != _reference(key):
            bad.append(key)
    return bad
