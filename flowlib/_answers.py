"""Running a reader's answer: a clear message when it is not written yet, and library functions switched off.

The machinery under :mod:`flowlib.exercises` (the checks a reader calls) and :mod:`flowlib._grading` (the hidden
tests the autograder adds); a reader never calls it.

* :func:`call_answer` calls an answer with :data:`PRIVATE_ANSWERS` switched off and turns the student edition's
  ``raise NotImplementedError()`` into an ``AssertionError`` that says what to do.
* :func:`forbidding` switches named library functions off while an answer runs, so that an exercise asking for
  a computation the library already has cannot be passed by calling the library's version.
* :func:`refuse_library_answer` fails when the answer *is* such a library function.
"""

from __future__ import annotations

import contextlib
import importlib
import types
from collections.abc import Callable, Iterator


def ok(message: str) -> None:
    """Print a check's confirmation: a tick, then the message."""
    print(f"\u2713 {message}")


#: the private helpers that compute exercises' answers for the checks and hidden tests; switched off while a
#: student's answer runs, so that calling one (they are importable) passes no check and no hidden test
PRIVATE_ANSWERS = (
    "flowlib._grading._euler_jump_residual",
    "flowlib.exercises._meanflow_target",
    "flowlib.exercises._lsd_without_stopgrad",
    "flowlib.exercises._expected_proximal",
)


def call_answer(function: Callable, name: str, *args: object) -> object:
    """Call an answer with the private answers switched off; an unwritten answer gets a clear message.

    The student edition's ``raise NotImplementedError()`` becomes an ``AssertionError`` that says what to do.
    """
    own_name = getattr(function, "__name__", "<lambda>")
    name = name if own_name.startswith("<") else own_name  # a lambda has no name worth quoting
    try:
        with forbidding(*PRIVATE_ANSWERS):
            return function(*args)
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not written yet: replace `raise NotImplementedError()` in its cell by your code, run that "
            "cell, then run this check again"
        ) from None


def _resolve(dotted: str) -> object:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute)
        return found
    raise ValueError(f"{dotted!r} names no importable module")


def _refusing_code(name: str) -> types.CodeType:
    """The code of a function that accepts anything and raises an ``AssertionError`` naming ``name``.

    It has no free variables and needs no globals (the message is a constant), so it can replace the code of
    any plain library function.
    """
    message = f"the exercise asks you to compute this yourself, but your code called {name}"
    namespace: dict = {}
    exec(f"def refused(*args, **kwargs):\n    raise AssertionError({message!r})\n", namespace)  # noqa: S102
    return namespace["refused"].__code__


@contextlib.contextmanager
def forbidding(*names: str) -> Iterator[None]:
    """Switch library functions off while an answer runs: calling one raises an ``AssertionError`` naming it.

    Hidden tests wrap the call of an answer in it, so that an exercise that asks for a computation cannot be
    passed by calling the library's own version. The function's code itself is swapped, so every way of
    reaching it fails: the module attribute, ``from flowlib.ode import heun_step``, ``ode.STEPPERS["heun"]``,
    a bound method such as ``mixture.velocity``. Everything is restored on exit.

    Args:
        names: dotted paths such as ``"flowlib.ode.heun_step"`` or ``"flowlib.exact.GaussianMixture.velocity"``.

    Raises:
        ValueError: a name that does not resolve, or that is not a plain Python function (raised on entry).
    """
    functions = []
    for name in names:
        owner_path, attribute = name.rsplit(".", 1)
        owner = _resolve(owner_path)
        if not hasattr(owner, attribute):
            raise ValueError(f"{name!r}: {owner_path} has no attribute {attribute!r}")
        function = getattr(owner, attribute)
        function = getattr(function, "__func__", function)
        while hasattr(function, "__wrapped__"):  # a decorated function (e.g. @torch.no_grad()): switch off its body
            function = function.__wrapped__
        if not isinstance(function, types.FunctionType) or function.__code__.co_freevars:
            raise ValueError(f"{name!r} is not a plain Python function whose code can be switched off")
        functions.append((function, function.__code__, _refusing_code(name)))
    try:
        for function, _, refusing in functions:
            function.__code__ = refusing
        yield
    finally:
        for function, original, _ in functions:
            function.__code__ = original


def refuse_library_answer(answer: object, *names: str) -> None:
    """Fail when the answer *is* one of the named library functions (passed itself, or bound to an object)."""
    answer = getattr(answer, "__func__", answer)
    for name in names:
        library = _resolve(name)
        if answer is getattr(library, "__func__", library):
            raise AssertionError(f"the exercise asks you to write this yourself; your answer is {name} itself")
