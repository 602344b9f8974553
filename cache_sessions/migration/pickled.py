"""Plain data out of an old engine's pickle, without unpickling it, in bounded time and memory.

django-redisession stored pickles. Reading them must not mean running them:
nothing here calls ``pickle``'s unpickler. ``pickletools.genops`` only parses
the opcodes (it executes nothing); a small stack machine below builds what
plain data needs (None, booleans, numbers, strings, bytes, lists, tuples,
dicts, sets) and calls nothing but the constructors in ``SAFE_GLOBALS``
(dates, times, decimals). Any other opcode or global makes the value
``Unreadable``.

Nor must it mean exhausting the process: a few hundred bytes of pickle can
describe gigabytes (the memo hands out one list twice, then that pair twice,
and so on), a cycle, or nesting deeper than any recursion. So every value
carries its size counted as if each shared part were a copy (what re-encoding
it would write), and a pickle passing any of ``Limits`` is ``Unreadable``. A
container fetched from the memo can no longer change: that is how a
self-reference shows (a list fetched while it is being filled), and why the
size the memo hands out is final. MARK is a stack of positions, so an opcode
costs what it moves, and the machine counts that work as steps.
"""

from __future__ import annotations

import datetime
import decimal
import pickletools
from collections.abc import Callable
from typing import Any

from .base import Unreadable
from .pickle_machine import LIMITS, Limits, Machine, Node, Refused


def _utc() -> datetime.tzinfo:
    return datetime.UTC


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3's pickle protocols 0-2 name for bytes (``_codecs.encode(text, "latin1")``)."""
    if encoding not in ("latin1", "latin-1"):
        raise Unreadable(f"its pickle encodes bytes with {encoding!r}, which is not read")
    return text.encode("latin-1")


def _empty_bytes() -> bytes:
    """What Python 3's pickle protocols 0-2 name for ``b""`` (``bytes()``; never ``bytes(n)``)."""
    return b""


# The only globals an old session's pickle may name: plain data, nothing that runs code.
SAFE_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    **{(module, kind.__name__): kind for module in ("builtins", "__builtin__") for kind in (set, frozenset)},
    **{("datetime", kind.__name__): kind for kind in (datetime.datetime, datetime.date, datetime.time)},
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("decimal", "Decimal"): decimal.Decimal,
    ("pytz", "_UTC"): _utc,  # pytz.utc pickles as a call of pytz._UTC()
    ("_codecs", "encode"): _latin1,
    **{(module, "bytes"): _empty_bytes for module in ("builtins", "__builtin__")},
}

_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})  # Python 2's 8-bit str: bytes here
_EMPTY: dict[str, Callable[[], Any]] = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple, "EMPTY_SET": set}
_ADDS_TO = {"APPEND": list, "APPENDS": list, "SETITEM": dict, "SETITEMS": dict, "ADDITEMS": set}


def loads(payload: bytes, limits: Limits = LIMITS) -> Any:
    """The plain data a pickle (protocol 0 to 5) describes; ``Unreadable`` for anything else,
    and for a pickle past ``limits``."""
    if len(payload) > limits.max_bytes:
        raise Unreadable(f"a pickle of {len(payload):,} bytes, over {limits.max_bytes:,}")
    try:
        return _run(payload, Machine(limits))
    except Unreadable:
        raise
    except Refused as exc:
        raise Unreadable(str(exc)) from None
    except Exception as exc:  # a truncated or malformed pickle, a constructor refusing its arguments...
        raise Unreadable(f"unreadable pickle ({type(exc).__name__})") from None


def _run(payload: bytes, machine: Machine) -> Any:
    for opcode, arg, _ in pickletools.genops(payload):
        machine.step()
        name = opcode.name
        if name == "STOP":
            return _result(machine.pop())
        handler = _HANDLERS.get(name)
        if handler is None:
            raise Unreadable(f"its pickle uses {name}, which is not read (plain data only)")
        handler(machine, name, arg)
    raise Unreadable("a pickle without STOP")


def _result(node: Node) -> Any:
    if node.constructor:
        raise Unreadable(f"its pickle is {node.value.__name__}, not a value")
    return node.value


def _value(machine: Machine, name: str, arg: Any) -> None:
    if name in _STRINGS:
        arg = arg.encode("latin-1")  # pickletools gives them as latin-1 text
    elif name in _CONSTANTS:
        arg = _CONSTANTS[name]
    machine.leaf(arg)


def _empty(machine: Machine, name: str, arg: Any) -> None:
    machine.container(_EMPTY[name](), [])


def _mark(machine: Machine, name: str, arg: Any) -> None:
    machine.marks.append(len(machine.stack))


def _put(machine: Machine, name: str, arg: Any) -> None:
    machine.memo[len(machine.memo) if name == "MEMOIZE" else arg] = machine.top()


def _get(machine: Machine, name: str, arg: Any) -> None:
    node = machine.memo.get(arg)
    if node is None:
        raise Unreadable(f"its pickle fetches memo {arg!r}, which it never stored")
    node.shared = True
    machine.count(node.size)  # a copy, as far as anything that walks the data is concerned
    machine.push(node)


def _add(machine: Machine, name: str, arg: Any) -> None:
    """APPEND, APPENDS, SETITEM, SETITEMS, ADDITEMS: items into the container on top of the stack."""
    if name == "APPEND":
        items = [machine.pop()]
    elif name == "SETITEM":
        value = machine.pop()
        items = [machine.pop(), value]
    else:
        items = machine.since_mark()
    node = machine.target(name, _ADDS_TO[name])
    container = node.value
    if type(container) is list:
        container.extend([item.value for item in items])
    elif type(container) is set:
        values = [item.value for item in items]
        machine.check_hashes(node, values)
        container.update(values)
    else:
        container.update(_pairs(machine, node, items))
    machine.nest(node, items)


def _pairs(machine: Machine, node: Node, items: list[Node]) -> list[tuple[Any, Any]]:
    """Key-value pairs of a dict's items, their keys checked."""
    if len(items) % 2:
        raise Unreadable("a dict's items in odd number")
    machine.charge(sum(item.size for item in items[::2]))  # hashing a key walks it
    machine.check_hashes(node, (item.value for item in items[::2]))
    return [(items[index].value, items[index + 1].value) for index in range(0, len(items), 2)]


def _build(machine: Machine, name: str, arg: Any) -> None:
    """LIST, TUPLE, DICT, FROZENSET (items since the MARK), TUPLE1-3 (the top items)."""
    if name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        items = [machine.pop() for _ in range(int(name[-1]))][::-1]
    else:
        items = machine.since_mark()
    values = [item.value for item in items]
    if name == "LIST":
        machine.container(values, items)
    elif name == "DICT":
        node = machine.container({}, items)
        node.value.update(_pairs(machine, node, items))
    elif name == "FROZENSET":
        node = machine.container(frozenset(), items)
        machine.check_hashes(node, values)
        node.value = frozenset(values)
    else:
        machine.container(tuple(values), items)


def _global(machine: Machine, name: str, arg: Any) -> None:
    if name == "GLOBAL":
        module, attribute = arg.split(" ", 1)
    else:
        attribute, module = machine.pop().value, machine.pop().value
    try:
        function = SAFE_GLOBALS[module, attribute]
    except (KeyError, TypeError):
        raise Unreadable(f"its pickle needs {module}.{attribute}, which is not read (plain data only)") from None
    machine.leaf(function, constructor=True)


def _call(machine: Machine, name: str, arg: Any) -> None:
    """REDUCE, NEWOBJ: a call of one of ``SAFE_GLOBALS`` (nothing else is ever called)."""
    args, function = machine.pop(), machine.pop()
    if not function.constructor or type(args.value) is not tuple:
        raise Unreadable(f"{name} of a {type(function.value).__name__}, not of a safe constructor")
    machine.charge(args.size)
    node = machine.container(None, [args])
    if function.value in (set, frozenset) and args.value:
        machine.check_hashes(node, args.value[0])
    node.value = function.value(*args.value)


_SCALARS = ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT")
_TEXTS = ("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8")
_HANDLERS: dict[str, Callable[[Machine, str, Any], None]] = {
    **dict.fromkeys((*_SCALARS, *_TEXTS, *_STRINGS, *_CONSTANTS), _value),
    **dict.fromkeys(_EMPTY, _empty),
    "MARK": _mark,
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), _put),
    **dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), _get),
    **dict.fromkeys(_ADDS_TO, _add),
    **dict.fromkeys(("LIST", "TUPLE", "DICT", "FROZENSET", "TUPLE1", "TUPLE2", "TUPLE3"), _build),
    **dict.fromkeys(("GLOBAL", "STACK_GLOBAL"), _global),
    **dict.fromkeys(("REDUCE", "NEWOBJ"), _call),
    **dict.fromkeys(("PROTO", "FRAME"), lambda machine, name, arg: None),
}
# Anything else (BUILD, INST, OBJ, PERSID, EXT, POP, DUP, buffers...) describes objects or
# manipulates the stack in ways plain data never needs: Unreadable.
