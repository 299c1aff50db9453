"""Checks: the visible ones students run on their answers, and :func:`expect` for hidden tests.

Each visible check either prints one line saying what passed, or raises
:class:`CheckFailed` (an ``AssertionError``) whose message says what was
expected, what came back, and what usually causes the difference.

Hidden tests state what they require with :func:`expect` (and
:func:`expect_true`): a value, the target it must match, and the message a
student sees if it does not. Run by a person, a failed expectation raises
like an ``assert``. Run by the course's grader (which sets ``$COURSE_JUDGE``
in the kernel), an expectation publishes the value it observed as plain data
(:func:`encode`): numbers, arrays, strings and containers of them, with
their exact types; targets are never computed in a student's kernel. The
grader compares the values, in its own process, with what the solution
published in a clean kernel, so nothing a submission does to its own kernel
(replacing functions, lying objects, rewritten asserts) can earn a point.
"""

from __future__ import annotations

import base64
import json
import math
import os
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Sequence, TypedDict

import sys

import numpy as np

from course_utils.paths import JUDGE_ENV

if TYPE_CHECKING:
    import torch

EXPECT_MIME = "application/vnd.course.expect+json"


class CheckFailed(AssertionError):
    """A visible check failed; the message is written for the student."""


def _fail(name: str, problem: str, hint: str | None) -> None:
    message = f"{name}: {problem}"
    if hint:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message)


def _ok(name: str, what: str) -> None:
    print(f"✓ {name}: {what}")


# ---------------------------------------------------------------- plain data


_FLOAT_DTYPES = {"float16", "float32", "float64", "complex64", "complex128"}
_INT_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}

# Limits on one published value, for the kernel that encodes it and the grader that decodes it: a
# value past them is not plain data (it never matches), and the grader never allocates for it.
MAX_VALUE_BYTES = 12 * 2**20  # an array's or a string's bytes (in base64, within the grader's 16 MiB)
MAX_DEPTH = 64  # lists and dicts inside each other
MAX_ITEMS = 200_000  # items of one list or dict; a published value's containers altogether
MAX_INT_DIGITS = 1000  # decimal digits of an int (a float holds 309)
MAX_NDIM = 32
MAX_PUBLISHED = 16 * 2**20  # characters of one published expectation, as JSON (the grader reads no more)


def encode(value: Any) -> dict:
    """``value`` as JSON-safe plain data that keeps its exact type.

    Tensors and arrays travel as dtype, shape and raw bytes; ``int``,
    ``float``, ``bool``, ``str`` and ``None`` as themselves; tuples, lists and
    dicts with string keys element by element. Anything else, including a
    subclass of a plain type (a ``str`` whose ``==`` always says yes), and
    anything past the limits above (nesting, size, digits), becomes
    ``{"t": "unsupported"}`` and never matches a target.
    """
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> dict:
    kind = type(value)
    if value is None:
        return {"t": "none"}
    if kind is bool:
        return {"t": "bool", "v": value}
    if kind is int:
        if value.bit_length() > MAX_INT_DIGITS * 3.32:  # str() of it would be slow, or raise
            return _unsupported("int with too many digits")
        return {"t": "int", "v": str(value)}
    if kind is float:
        return {"t": "float", "v": repr(value)}
    if kind is str:
        return {"t": "str", "v": value} if len(value) <= MAX_VALUE_BYTES else _unsupported("string too long")
    torch = sys.modules.get("torch")  # a value can only be a tensor if torch is loaded: never import it here
    is_size = torch is not None and kind is torch.Size
    if kind in (tuple, list, dict) or is_size:
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            return _unsupported(f"{kind.__name__} nested too deeply or too long")
        if kind is dict:
            if not all(type(k) is str for k in value):
                return _unsupported("dict whose keys are not all strings")
            return {"t": "dict", "v": {k: _encode(v, depth + 1) for k, v in value.items()}}
        return {"t": "list", "v": [_encode(v, depth + 1) for v in value]}
    if torch is not None and kind in (torch.Tensor, torch.nn.Parameter):
        try:
            tensor = value.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            return _array(tensor.resolve_conj().resolve_neg().numpy())
        except (RuntimeError, TypeError, ValueError):  # sparse, meta, dtypes numpy lacks
            return _unsupported(f"tensor of {value.dtype}")
    if kind is np.ndarray or isinstance(value, np.generic) and kind.__module__ == "numpy":
        return _array(np.asarray(value))
    return _unsupported(f"{kind.__module__}.{kind.__qualname__}")


def _unsupported(type_name: str) -> dict:
    return {"t": "unsupported", "type": type_name}


def _array(array: np.ndarray) -> dict:
    name = array.dtype.name
    if name not in _FLOAT_DTYPES | _INT_DTYPES:
        return _unsupported(f"array of {name}")
    if array.nbytes > MAX_VALUE_BYTES or array.ndim > MAX_NDIM:
        return _unsupported(f"array of {array.nbytes} bytes in {array.ndim} dimensions")
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"t": "array", "dtype": name, "shape": list(array.shape), "v": base64.b64encode(data.tobytes()).decode()}


class Unsupported:
    """A decoded value that was not plain data (its type name, for the message)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def decode(data: Any) -> Any:
    """The value :func:`encode` described; arrays come back as numpy arrays.

    Safe on input from an untrusted kernel: it builds only numbers, strings,
    lists, dicts and arrays of whitelisted dtypes (never unpickles), checks
    every size, digit count and nesting depth against the limits above before
    it allocates, and never raises: a malformed or oversized description
    decodes to :class:`Unsupported`.
    """
    try:
        return _decode(data, 0)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError, MemoryError):
        return Unsupported("malformed value")


def _decode(data: Any, depth: int) -> Any:
    kind, v = data["t"], data.get("v")
    if kind == "none":
        return None
    if kind == "bool" and type(v) is bool:
        return v
    if kind == "int" and type(v) is str and len(v) <= MAX_INT_DIGITS + 1:
        return int(v)
    if kind == "float" and type(v) is str and len(v) <= 40:
        return float(v)
    if kind == "str" and type(v) is str:
        return v
    if kind in ("list", "dict") and depth >= MAX_DEPTH:
        return Unsupported("value nested too deeply")
    if kind == "list" and type(v) is list and len(v) <= MAX_ITEMS:
        return [_decode(item, depth + 1) for item in v]
    if kind == "dict" and type(v) is dict and len(v) <= MAX_ITEMS:
        return {k: _decode(item, depth + 1) for k, item in v.items()}
    if kind == "array":
        return _decode_array(data["dtype"], data["shape"], v)
    if kind == "unsupported":
        return Unsupported(str(data.get("type", "object"))[:80])
    return Unsupported("malformed value")


def _decode_array(dtype_name: Any, shape: Any, text: Any) -> Any:
    """An array, once its dtype, shape and byte count are known to be sane (before anything is allocated)."""
    if dtype_name not in _FLOAT_DTYPES | _INT_DTYPES or type(shape) is not list or type(text) is not str:
        return Unsupported("malformed array")
    if len(shape) > MAX_NDIM or not all(type(n) is int and 0 <= n <= MAX_VALUE_BYTES for n in shape):
        return Unsupported("array of an impossible shape")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    nbytes = dtype.itemsize * math.prod(shape)
    if nbytes > MAX_VALUE_BYTES or len(text) != 4 * math.ceil(nbytes / 3):
        return Unsupported("array whose bytes do not match its shape")
    raw = base64.b64decode(text, validate=True)
    if len(raw) != nbytes:
        return Unsupported("array whose bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _numeric(value: Any) -> bool:
    return (type(value) in (int, float)) or (isinstance(value, np.ndarray) and value.dtype.name != "bool")


def compare(value: Any, target: Any, rtol: float = 1e-5, atol: float = 1e-8) -> str | None:
    """Why the decoded ``value`` does not match the decoded ``target``, or None when it does.

    Numbers and arrays match within ``rtol``/``atol`` (shapes must agree, a
    plain number and a 0-dim array are the same shape); booleans, strings and
    None must be equal and of the same type; lists and dicts match element by
    element. The grader calls this in its own process, on decoded values only,
    so it never raises: a value that cannot be compared (an int no float holds
    against a float) does not match.
    """
    try:
        return _compare(value, target, rtol, atol)
    except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        return f"a value that cannot be compared with the target ({type(exc).__name__})"


def _compare(value: Any, target: Any, rtol: float, atol: float) -> str | None:
    if isinstance(value, Unsupported):
        return f"a {value.type_name}, which is not plain data"
    if target is None or type(target) in (bool, str):
        if type(value) is not type(target) or value != target:
            return f"{_short(value)} where {_short(target)} was expected"
        return None
    if isinstance(target, np.ndarray) and target.dtype.name == "bool":
        if not isinstance(value, np.ndarray) or value.dtype.name != "bool" or value.shape != target.shape:
            return f"{_short(value)} where a boolean array of shape {target.shape} was expected"
        return None if bool((value == target).all()) else "boolean array differs"
    if _numeric(target):
        if not _numeric(value):
            return f"{_short(value)} where a number or array was expected"
        if type(value) is int and type(target) is int:  # exact, whatever their size
            close = abs(value - target) <= Fraction(atol) + Fraction(rtol) * abs(target)
            return None if close else "values differ beyond the tolerance"
        v, t = np.asarray(value), np.asarray(target)
        if v.shape != t.shape:
            return f"shape {v.shape} where {t.shape} was expected"
        if not np.allclose(v.astype(complex if v.dtype.kind == "c" else float),
                           t.astype(complex if t.dtype.kind == "c" else float), rtol=rtol, atol=atol):
            return "values differ beyond the tolerance"
        return None
    if isinstance(target, list):
        if not isinstance(value, list) or len(value) != len(target):
            return f"{_short(value)} where a sequence of {len(target)} was expected"
        for i, (v, t) in enumerate(zip(value, target)):
            problem = _compare(v, t, rtol, atol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(target, dict):
        if not isinstance(value, dict) or set(value) != set(target):
            return "keys differ"
        for key in target:
            problem = _compare(value[key], target[key], rtol, atol)
            if problem:
                return f"{_short(key)}: {problem}"
        return None
    return f"an unsupported target {_short(target)}"


def _short(value: Any) -> str:
    """A few words for a value, never its whole text (it may be megabytes, or nested deeply)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    if type(value) is int and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    text = repr(value[:40] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- the message to the grader


MAX_LABEL = 10_000  # characters of a message the grader keeps; a longer one is cut (it can match no real test)
RTOL, ATOL = 1e-5, 1e-8  # an expectation's tolerances unless it names its own


class Published(TypedDict):
    """What one expectation tells the course's grader, defined once for both sides.

    The kernel sends it as JSON text under :data:`EXPECT_MIME` (:func:`published_text`); the
    grader reads that text back with :func:`read_published`, and the reference values and the
    status records keep it as the same JSON object, read back with :func:`stored_published`.
    """

    label: str  # the expectation's message: its name, and what a student sees when it fails
    value: Any  # the observed value as :func:`encode` describes it (from a kernel: anything; decode it)
    rtol: float  # the tolerances it is judged with (the reference run's count)
    atol: float


def published_text(message: str, value: Any, rtol: float, atol: float) -> str:
    """An expectation's :class:`Published` message as the text the kernel sends, within
    :data:`MAX_PUBLISHED` (escaped text can outgrow its characters: a value past the limit is sent
    as not plain data, so it fails rather than being dropped unseen)."""
    payload = Published(label=str(message), value=encode(value), rtol=float(rtol), atol=float(atol))
    text = json.dumps(payload)
    if len(text) > MAX_PUBLISHED:
        text = json.dumps({**payload, "value": _unsupported("value too large to publish")})
    return text


def read_published(raw: object) -> Published | None:
    """One message as the grader receives it from a kernel, or None for anything malformed or too large.

    The sizes are checked on the text before it is parsed, so what parsing builds stays within a
    small multiple of :data:`MAX_PUBLISHED`: a brace or bracket costs a Python container, text costs
    its length. Nesting past the parser's recursion limit is malformed, not an error of the grader.
    """
    if type(raw) is not str or len(raw) > MAX_PUBLISHED or published_cost(raw) > 2 * MAX_PUBLISHED:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError, MemoryError):
        return None
    return stored_published(data)


def stored_published(data: object) -> Published | None:
    """A message kept as a JSON object (a parsed message, reference values, a status record), or None
    when it is not one: its label a string (cut past :data:`MAX_LABEL`), its value present, its
    tolerances numbers (:data:`RTOL`, :data:`ATOL` where one is missing or is not a number)."""
    if type(data) is not dict or type(data.get("label")) is not str or "value" not in data:
        return None
    label = data["label"] if len(data["label"]) <= MAX_LABEL else data["label"][:MAX_LABEL] + "..."
    return Published(label=label, value=data["value"], rtol=_tolerance(data.get("rtol"), RTOL),
                     atol=_tolerance(data.get("atol"), ATOL))


def stored_list(stored: object) -> list[Published]:
    """A kept list of messages (one test's), entries that are not messages dropped."""
    if type(stored) is not list:
        return []
    return [p for p in map(stored_published, stored) if p is not None]


def published_cost(raw: str) -> int:
    """About how many bytes a message holds once parsed: its text, plus a small Python object for each
    JSON object or array (counted on the text, before parsing)."""
    return len(raw) + 200 * (raw.count("{") + raw.count("["))


def _tolerance(value: object, default: float) -> float:
    if type(value) not in (int, float):
        return default
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int no float holds
        return default


def _publish(message: str, value: Any, rtol: float, atol: float) -> None:
    """Under the course's grader, send what an expectation observed to the grader as plain data."""
    try:
        from IPython.display import display
    except ImportError:  # not in a kernel
        return
    display({EXPECT_MIME: published_text(message, value, rtol, atol)}, raw=True)


def expect(value: Any, target: Any, message: str, *, rtol: float = RTOL, atol: float = ATOL) -> None:
    """A hidden test's requirement: ``value`` must match ``target`` (see :func:`compare`).

    ``value`` comes from the student's code on the test's own seeded inputs;
    ``target`` is what it should be, computed inline or between
    ``### BEGIN REFERENCE`` and ``### END REFERENCE`` lines of the hidden
    test (a formula, a library function), or ``None`` for "whatever the
    solution gives". ``message`` is all a student sees when it fails: say
    what is wrong and what usually causes it, never the inputs or numbers.

    Run by a person or plain nbgrader, a mismatch raises like an ``assert``.
    Under the course's grader (``$COURSE_JUDGE`` set in the kernel) the
    student's kernel runs the hidden test with its REFERENCE blocks removed
    and every target replaced by ``None``, so no expected value ever exists
    where student code could read it; ``value`` is published and the grader
    compares it, in its own process, with the value the solution published
    for the same expectation in a clean kernel, where the target was
    computed and checked.
    """
    if os.environ.get(JUDGE_ENV):
        _publish(message, value, rtol, atol)
    if target is not None and compare(decode(encode(value)), decode(encode(target)), rtol, atol) is not None:
        raise CheckFailed(message)


def expect_true(condition: Any, message: str) -> None:
    """A hidden test's yes/no requirement; ``condition`` must be exactly ``True``.

    Prefer :func:`expect` on a value: a yes/no answer is easy to guess.
    """
    expect(condition if type(condition) is bool else _as_bool(condition), True, message)


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _as_bool(condition: Any) -> Any:
    """numpy and 0-dim torch booleans count as booleans; anything else stays as it is and fails."""
    if isinstance(condition, np.bool_) or _is_tensor(condition) and condition.ndim == 0:
        return bool(condition)
    return condition


def check_tensor(value: Any, name: str, *, shape: Sequence[int | None] | None = None,
                 dtype: torch.dtype | None = None, hint: str | None = None) -> None:
    """Check that ``value`` is a tensor of the given shape (``None`` = any size) and dtype."""
    import torch

    if not isinstance(value, torch.Tensor):
        _fail(name, f"expected a torch.Tensor, got {type(value).__name__}", hint)
    if shape is not None:
        ok = len(value.shape) == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            _fail(name, f"expected shape {want}, got {tuple(value.shape)}", hint)
    if dtype is not None and value.dtype != dtype:
        _fail(name, f"expected dtype {dtype}, got {value.dtype}", hint)
    if value.is_floating_point() and not torch.isfinite(value).all():
        _fail(name, "contains NaN or infinity", hint or "look for a log or division of zero")
    _ok(name, f"tensor of shape {tuple(value.shape)}" + (f", {value.dtype}" if dtype else ""))


def check_scalar(value: Any, name: str, *, hint: str | None = None) -> None:
    """Check that ``value`` is a single number (a 0-dim tensor or a float), e.g. a batch-averaged loss."""
    if _is_tensor(value):
        if value.dim() != 0:
            _fail(name, f"expected a scalar (0-dim tensor), got shape {tuple(value.shape)}",
                  hint or "average (or sum) over the batch so one number comes back")
        value = value.item()
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        _fail(name, f"expected a finite number, got {value!r}", hint)
    _ok(name, f"scalar {value:.4g}")


def check_close(actual: Any, expected: Any, name: str, *, rtol: float = 1e-5, atol: float = 1e-6,
                hint: str | None = None) -> None:
    """Check ``actual`` against a known value within tolerances, and report the worst mismatch."""
    a = np.asarray(actual.detach().cpu() if _is_tensor(actual) else actual, dtype=float)
    e = np.asarray(expected.detach().cpu() if _is_tensor(expected) else expected, dtype=float)
    if a.shape != e.shape:
        _fail(name, f"expected shape {e.shape}, got {a.shape}", hint)
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=False):
        worst = np.unravel_index(np.argmax(np.abs(a - e)), a.shape) if a.shape else ()
        _fail(name, f"value {a[worst]:.6g} where {e[worst]:.6g} was expected"
              + (f" (at index {tuple(int(i) for i in worst)})" if a.shape else "")
              + f"; tolerance rtol={rtol}, atol={atol}", hint)
    _ok(name, "matches the reference" + (f" ({a.size} values)" if a.shape else f" ({float(a):.6g})"))


def check_true(condition: bool, name: str, problem: str, *, hint: str | None = None,
               success: str = "looks right") -> None:
    """A custom check: ``problem`` is shown when ``condition`` is false."""
    if not condition:
        _fail(name, problem, hint)
    _ok(name, success)
