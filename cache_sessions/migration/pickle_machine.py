"""The bookkeeping of ``pickled.py``'s stack machine: the stack and its MARKs, the memo,
and what reading one pickle has cost so far, against ``Limits``.

Each value is a ``Node``: its size counted as if every shared part were a
copy (what re-encoding the data would write), its nesting depth, whether the
memo has handed it out (then it may not change), and, for a dict or a set, how
many of its keys share each hash. The stack holds nodes; MARK pushes the
stack's length on a stack of its own, and what is below the last MARK is out
of reach until the opcode that closes it, as in pickle's own machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..format.codec import DEFAULT_MAX_SIZE


class Refused(ValueError):
    """A pickle this machine does not read (``pickled.loads`` makes it ``Unreadable``)."""


@dataclass(frozen=True)
class Limits:
    """What reading one pickle may cost; past any of these it is refused."""

    max_bytes: int = DEFAULT_MAX_SIZE  # the pickle itself
    max_size: int = DEFAULT_MAX_SIZE  # the data, as msgpack would count it (an element >= 1, a string its length)
    max_depth: int = 100  # containers nested in containers
    max_steps: int = 4 * DEFAULT_MAX_SIZE  # opcodes read, items moved, keys hashed
    max_same_hash: int = 8  # keys of one dict or set sharing a hash (ints are hashed without a seed)


LIMITS = Limits()


def _size(value: Any) -> int:
    """What msgpack would write for a scalar, at least."""
    if isinstance(value, (str, bytes)):
        return 1 + len(value)
    if isinstance(value, int):
        return 1 + value.bit_length() // 8
    return 1


class Node:
    """A value on the stack or in the memo: its size with shared parts counted as copies, its
    nesting depth, whether the memo handed it out (then it may not change), the hashes of its
    keys (a dict or a set), and whether it is a constructor (only ever called, never data)."""

    __slots__ = ("constructor", "depth", "hashes", "shared", "size", "value")

    def __init__(self, value: Any, size: int, depth: int = 0, constructor: bool = False) -> None:
        self.value, self.size, self.depth, self.constructor = value, size, depth, constructor
        self.shared = False
        self.hashes: dict[int, int] | None = None


class Machine:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stack: list[Node] = []
        self.marks: list[int] = []  # where each open MARK is on the stack
        self.memo: dict[Any, Node] = {}
        self.built = 0  # the size of everything made or fetched from the memo
        self.steps = 0

    # Accounting.

    def step(self) -> None:
        """One opcode read."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            self.charge(0)

    def charge(self, steps: int) -> None:
        self.steps += steps
        if self.steps > self.limits.max_steps:
            raise Refused(f"its pickle takes over {self.limits.max_steps:,} steps to read")

    def count(self, size: int) -> None:
        self.built += size
        if self.built > self.limits.max_size:
            raise Refused(f"its data passes {self.limits.max_size:,} bytes (shared parts counted as copies)")

    def nest(self, node: Node, items: list[Node]) -> None:
        size, depth = node.size, node.depth
        for item in items:
            if item.constructor:
                raise Refused(f"its pickle uses {item.value.__name__} as data, not to make a value")
            size += item.size
            if item.depth >= depth:
                depth = item.depth + 1
        node.size, node.depth = size, depth
        if depth > self.limits.max_depth:
            raise Refused(f"its data is nested over {self.limits.max_depth} deep")

    def check_hashes(self, node: Node, keys: Iterable[Any]) -> None:
        """Refuse keys that would make inserting into ``node`` quadratic: many with one hash."""
        counts = node.hashes
        for key in keys:
            if type(key) is str or type(key) is bytes:  # hashed with a per-process seed
                continue
            if counts is None:
                counts = node.hashes = {}
            digest = hash(key)
            counts[digest] = same = counts.get(digest, 0) + 1
            if same > self.limits.max_same_hash:
                raise Refused(f"its pickle has {same} keys of one hash in one dict or set")

    # The stack. MARK hides what is below it until the opcode that closes it.

    def floor(self) -> int:
        return self.marks[-1] if self.marks else 0

    def push(self, node: Node) -> None:
        self.stack.append(node)

    def pop(self) -> Node:
        if len(self.stack) <= self.floor():
            raise Refused("its pickle pops past its stack")
        return self.stack.pop()

    def top(self) -> Node:
        if len(self.stack) <= self.floor():
            raise Refused("its pickle reads past its stack")
        return self.stack[-1]

    def since_mark(self) -> list[Node]:
        if not self.marks:
            raise Refused("its pickle closes a MARK it never opened")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        self.charge(len(items))
        return items

    def leaf(self, value: Any, constructor: bool = False) -> None:
        node = Node(value, _size(value), constructor=constructor)
        self.count(node.size)
        self.push(node)

    def container(self, value: Any, items: list[Node]) -> Node:
        """A new container on the stack, holding ``items``."""
        node = Node(value, 1, 1)
        if items:
            self.nest(node, items)
        self.count(1)
        self.push(node)
        return node

    def target(self, name: str, kind: type) -> Node:
        """The ``kind`` of container an adding opcode (``name``) changes: the one on top of the stack."""
        node = self.top()
        if type(node.value) is not kind:
            raise Refused(f"{name} on a {type(node.value).__name__}")
        if node.shared:
            raise Refused("its pickle changes a container after sharing it (a self-reference)")
        return node
