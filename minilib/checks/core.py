"""The machinery behind every exercise check: run the learner's function, compare, report.

A checker prints one of three verdicts and returns a bool. It never raises, so "Run All" on an
untouched exercise notebook reaches the end:

    ✅ passed      the learner's output matches the reference on every case
    ❌ failed      with the first failing case and a diff (max abs error, shapes, values)
    ⏳ not implemented yet   the function still raises NotImplementedError
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch


class Verdict:
    """A check's result: truthy when passed. Shows nothing as a cell's value (the checker has
    already printed its verdict), so a check cell does not end with a stray `True`."""

    def __init__(self, ok: bool, status: str):
        self.ok, self.status = ok, status

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other) -> bool:
        return bool(self) == bool(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"Verdict({self.status})"

    def _ipython_display_(self) -> None:
        pass


def passed(name: str, detail: str = "") -> Verdict:
    print(f"✅ {name}: passed" + (f" ({detail})" if detail else ""))
    return Verdict(True, "passed")


def failed(name: str, detail: str) -> Verdict:
    print(f"❌ {name}: failed\n   {detail}")
    return Verdict(False, "failed")


def not_implemented(name: str) -> Verdict:
    print(f"⏳ {name}: not implemented yet — the notebook continues with minilib's version.")
    return Verdict(False, "not implemented")


def _signature_problem(fn: Callable, args: tuple, kwargs: dict) -> str | None:
    """A readable message when `fn` cannot be called with these arguments, else None."""
    if not callable(fn):
        return f"expected a function, got {type(fn).__name__} {fn!r}"
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        return f"the function's signature does not fit the check: {e}"
    except ValueError:  # builtins without a signature: just try calling
        return None
    return None


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{tuple(x.shape)} {x.dtype}"
    return repr(x)[:200]


def compare(got: Any, want: Any, atol: float, rtol: float) -> str | None:
    """None when `got` matches `want` (tensors within tolerance, containers elementwise)."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected {_describe(want)}, got {_describe(got)}"
        if got.shape != want.shape:
            return f"shape mismatch: expected {tuple(want.shape)}, got {tuple(got.shape)}"
        g, w = got.detach().double().cpu(), want.detach().double().cpu()
        if not torch.isfinite(g).all() and torch.isfinite(w).all():
            return "output contains NaN or inf"
        if not torch.allclose(g, w, atol=atol, rtol=rtol):
            err = (g - w).abs()
            i = int(err.argmax())
            return (f"max abs error {err.max().item():.3g} (tolerance {atol:g}) at flat index {i}: "
                    f"expected {w.flatten()[i].item():.6g}, got {g.flatten()[i].item():.6g}")
        return None
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"expected a sequence of length {len(want)}, got {_describe(got)}"
        if all(not isinstance(w, (torch.Tensor, tuple, list, dict, float)) for w in want):
            if list(got) != list(want):
                firsts = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b) \
                    if any(a != b for a, b in zip(got, want)) else min(len(got), len(want))
                return (f"sequences differ at position {firsts}: expected {list(want)[:20]}..., "
                        f"got {list(got)[:20]}...")
            return None
        for i, (g, w) in enumerate(zip(got, want)):
            problem = compare(g, w, atol, rtol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return f"expected a dict with keys {sorted(want)}, got {_describe(got)}"
        for k in want:
            problem = compare(got[k], want[k], atol, rtol)
            if problem:
                return f"key {k!r}: {problem}"
        return None
    if isinstance(want, float):
        if not isinstance(got, (int, float)) or abs(got - want) > atol + rtol * abs(want):
            return f"expected {want:.6g}, got {_describe(got)}"
        return None
    if got != want:
        return f"expected {_describe(want)}, got {_describe(got)}"
    return None


def check_function(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[tuple[tuple, dict] | tuple],
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> Verdict:
    """Call `fn` and `reference` on every case (args tuple, or (args, kwargs)) and compare.

    Inputs are cloned for each call, so a function that modifies its input in place cannot
    spoil the reference's view of it.
    """
    try:
        for case_no, case in enumerate(cases):
            if isinstance(case, tuple) and len(case) == 2 and isinstance(case[1], dict) \
                    and isinstance(case[0], tuple):
                args, kwargs = case
            else:
                args, kwargs = (case if isinstance(case, tuple) else (case,)), {}
            problem = _signature_problem(fn, args, kwargs)
            if problem:
                return failed(name, problem)
            want = reference(*_clone(args), **_clone(kwargs))
            try:
                got = fn(*_clone(args), **_clone(kwargs))
            except NotImplementedError:
                return not_implemented(name)
            except Exception as e:  # noqa: BLE001  (report, never raise)
                where = traceback.extract_tb(e.__traceback__)[-1]
                return failed(name, f"case {case_no} raised {type(e).__name__}: {e} "
                                    f"(line {where.lineno}: {where.line})")
            problem = compare(got, want, atol, rtol)
            if problem:
                return failed(name, f"case {case_no} ({_describe_args(args)}): {problem}")
        return passed(name, f"{len(cases)} cases")
    except Exception as e:  # noqa: BLE001  (a bug in a checker must not stop the notebook)
        return failed(name, f"the checker itself hit {type(e).__name__}: {e}")


def check_call(name: str, thunk: Callable[[], str | None]) -> Verdict:
    """Run `thunk`, which returns None on success or a problem string; report, never raise."""
    try:
        problem = thunk()
    except NotImplementedError:
        return not_implemented(name)
    except Exception as e:  # noqa: BLE001
        where = traceback.extract_tb(e.__traceback__)[-1]
        return failed(name, f"raised {type(e).__name__}: {e} (line {where.lineno}: {where.line})")
    return passed(name) if problem is None else failed(name, problem)


def _clone(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, tuple):
        return tuple(_clone(v) for v in x)
    if isinstance(x, list):
        return [_clone(v) for v in x]
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def _describe_args(args: tuple) -> str:
    return ", ".join(_describe(a) for a in args)[:200]
