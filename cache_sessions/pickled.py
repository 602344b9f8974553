"""Plain data out of an old engine's pickle, without unpickling it.

django-redisession stored pickles. Reading them must not mean running them:
nothing here calls ``pickle``'s unpickler. ``pickletools.genops`` only parses
the opcodes (it executes nothing); a small stack machine below builds what
plain data needs (None, booleans, numbers, strings, bytes, lists, tuples,
dicts, sets) and calls nothing but the constructors in ``SAFE_GLOBALS``
(dates, times, decimals). Any other opcode or global makes the value
``Unreadable``.
"""

from __future__ import annotations

import datetime
import decimal
import pickletools
from collections.abc import Callable
from typing import Any

from .sources import Unreadable


def _utc() -> datetime.tzinfo:
    return datetime.UTC


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3's pickle protocols 0-2 name for bytes (``_codecs.encode(text, "latin1")``)."""
    if encoding not in ("latin1", "latin-1"):
        raise Unreadable(f"its pickle encodes bytes with {encoding!r}, which is not read")
    return text.encode("latin-1")


# The only globals an old session's pickle may name: plain data, nothing that runs code.
SAFE_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    **{(module, kind.__name__): kind for module in ("builtins", "__builtin__") for kind in (set, frozenset)},
    **{("datetime", kind.__name__): kind for kind in (datetime.datetime, datetime.date, datetime.time)},
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("decimal", "Decimal"): decimal.Decimal,
    ("pytz", "_UTC"): _utc,  # pytz.utc pickles as a call of pytz._UTC()
    ("_codecs", "encode"): _latin1,
}

_MARK = object()
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY: dict[str, Callable[[], Any]] = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple, "EMPTY_SET": set}
_VALUES = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
    ]
)
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})  # Python 2's 8-bit str: bytes here
_IGNORED = frozenset({"PROTO", "FRAME"})


def loads(payload: bytes) -> Any:
    """The plain data a pickle (protocol 0 to 5) describes; ``Unreadable`` for anything else."""
    try:
        return _run(payload)
    except Unreadable:
        raise
    except Exception as exc:  # a truncated or malformed pickle, a constructor refusing its arguments...
        raise Unreadable(f"unreadable pickle ({type(exc).__name__})") from None


def _run(payload: bytes) -> Any:
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    arg: Any
    for opcode, arg, _ in pickletools.genops(payload):
        name = opcode.name
        if name in _VALUES:
            stack.append(arg)
        elif name in _STRINGS:
            stack.append(arg.encode("latin-1"))  # pickletools gives them as latin-1 text
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in _EMPTY:
            stack.append(_EMPTY[name]())
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "STOP":
            return stack.pop()
        elif name not in _IGNORED:
            _structure(name, arg, stack)
    raise Unreadable("a pickle without STOP")


def _structure(name: str, arg: Any, stack: list[Any]) -> None:
    """The opcodes that assemble containers, or call one of the safe constructors."""
    if name == "APPEND":
        _add(stack, name, [stack.pop()])
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        _add(stack, name, [(key, value)])
    elif name in ("APPENDS", "ADDITEMS"):
        _add(stack, name, _since_mark(stack))
    elif name == "SETITEMS":
        items = _since_mark(stack)
        _add(stack, name, list(zip(items[::2], items[1::2], strict=True)))
    elif name in ("LIST", "TUPLE", "DICT", "FROZENSET"):
        items = _since_mark(stack)
        built = {"LIST": list, "TUPLE": tuple, "FROZENSET": frozenset}.get(name)
        stack.append(built(items) if built else dict(zip(items[::2], items[1::2], strict=True)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        size = int(name[-1])
        items = stack[-size:]
        del stack[-size:]
        stack.append(tuple(items))
    elif name in ("GLOBAL", "STACK_GLOBAL"):
        module, attribute = arg.split(" ", 1) if name == "GLOBAL" else (stack.pop(-2), stack.pop())
        try:
            stack.append(SAFE_GLOBALS[module, attribute])
        except KeyError:
            raise Unreadable(f"its pickle needs {module}.{attribute}, which is not read (plain data only)") from None
    elif name in ("REDUCE", "NEWOBJ"):
        args = stack.pop()
        stack.append(stack.pop()(*args))  # only SAFE_GLOBALS can be on the stack as callables
    else:  # BUILD, INST, OBJ, PERSID, EXT...: objects, not plain data
        raise Unreadable(f"its pickle uses {name}, which is not read (plain data only)")


_ADDS_TO = {"APPEND": list, "APPENDS": list, "SETITEM": dict, "SETITEMS": dict, "ADDITEMS": set}


def _add(stack: list[Any], name: str, items: list[Any]) -> None:
    """Add ``items`` to the container on top of the stack (a list, a dict or a set, as ``name`` says)."""
    target = stack[-1]
    if type(target) is not _ADDS_TO[name]:
        raise Unreadable(f"{name} on a {type(target).__name__}")
    if isinstance(target, list):
        target.extend(items)
    else:
        target.update(items)


def _since_mark(stack: list[Any]) -> list[Any]:
    mark = len(stack) - 1 - stack[::-1].index(_MARK)
    items = stack[mark + 1 :]
    del stack[mark:]
    return items
