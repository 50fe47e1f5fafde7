"""Batched Merkle-Patricia trie updates: many keys set or deleted in one pass.

Setting keys one at a time (py-trie's ``HexaryTrie``) decodes, re-encodes and re-hashes
every node on a key's path for every key: about ten node codings per key in a block of
transfers. Here the changes are sorted by path and applied in one walk from the root,
so each node the block touches is read once and written once.

The rules are Ethereum's (Yellow Paper, appendix D): a node is a leaf ``[path, value]``,
an extension ``[path, child]`` or a branch of 16 children plus a value; paths are
hex-prefix encoded; a child whose encoding is shorter than 32 bytes is embedded in its
parent, any other is referred to by its Keccak-256 hash. The root is always stored by hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from primitives import rlp
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.rlp import encode

Node = bytes | list["Node"]
"""A decoded node (a list), an item of one (bytes or an embedded list), or b"" for none."""

Nibbles = bytes
"""A path as one nibble per byte."""

Change = tuple[Nibbles, bytes | None]
"""A key's path and its new value, None to delete it."""

_BLANK = b""


# -- RLP (primitives.rlp) -----------------------------------------------------------------


def decode(data: bytes) -> Node:
    """A node from its RLP encoding; Halt when it is not well formed."""
    try:
        return rlp.decode(data)
    except rlp.DecodingError as exc:
        raise Halt(f"malformed state trie node: {exc}") from None


# -- paths ----------------------------------------------------------------------------


_TO_NIBBLES = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))
_TO_HEX = bytes.maketrans(bytes(range(16)), b"0123456789abcdef")


def nibbles(key: bytes) -> Nibbles:
    """The nibbles of ``key``, most significant first."""
    return key.hex().encode().translate(_TO_NIBBLES)


def _hex_prefix(path: Nibbles, leaf: bool) -> bytes:
    flag = (2 if leaf else 0) + (len(path) & 1)
    padded = bytes([flag]) + path if len(path) & 1 else bytes([flag, 0]) + path
    return bytes.fromhex(padded.translate(_TO_HEX).decode())


def _unprefix(encoded: bytes) -> tuple[Nibbles, bool]:
    if not encoded:
        raise Halt("malformed state trie node: empty path")
    path = nibbles(encoded)
    flag = path[0]
    if flag > 3:
        raise Halt("malformed state trie node: bad path flag")
    return path[2 - (flag & 1) :], flag >= 2


def _common_prefix(a: Nibbles, b: Nibbles) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# -- the update -----------------------------------------------------------------------


class TrieWriter:
    """Applies batches of changes to tries whose nodes ``read`` returns by hash; new nodes are
    handed to ``write`` (hash, encoding). Nodes read are kept for the writer's lifetime."""

    def __init__(self, read: Callable[[bytes], bytes], write: Callable[[bytes, bytes], None]) -> None:
        self._read = read
        self._write = write
        self._decoded: dict[bytes, Node] = {}

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """Value of ``key`` in the trie under ``root`` (keys are hashed paths already)."""
        node = self._root_node(root)
        path = nibbles(key)
        while True:
            if node == _BLANK:
                return None
            assert isinstance(node, list)
            if len(node) == 17:
                if not path:
                    return node[16] if isinstance(node[16], bytes) and node[16] else None
                node, path = self._child(node[path[0]]), path[1:]
                continue
            if len(node) != 2 or not isinstance(node[0], bytes):
                raise Halt("malformed state trie node: neither leaf, extension nor branch")
            node_path, leaf = _unprefix(node[0])
            if leaf:
                value = node[1]
                return value if path == node_path and isinstance(value, bytes) else None
            if path[: len(node_path)] != node_path:
                return None
            node, path = self._child(node[1]), path[len(node_path) :]

    def update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Root of the trie under ``root`` after setting (or, for None, deleting) each key."""
        ordered = sorted((nibbles(key), value) for key, value in changes.items())
        node = self._apply(self._root_node(root), ordered)
        if node == _BLANK:
            return EMPTY_ROOT
        encoded = encode(node)
        root_hash = keccak256(encoded)
        self._write(root_hash, encoded)
        return root_hash

    def _root_node(self, root: bytes) -> Node:
        return _BLANK if root == EMPTY_ROOT else self._child(root)

    def _child(self, ref: Node) -> Node:
        """The node a parent's item refers to: embedded, by hash, or none."""
        if isinstance(ref, list):
            return ref
        if ref == _BLANK:
            return _BLANK
        if len(ref) != 32:
            raise Halt(f"malformed state trie node: child reference of {len(ref)} bytes")
        node = self._decoded.get(ref)
        if node is None:
            try:
                encoded = self._read(ref)
            except KeyError:
                raise Halt(f"state trie node {ref.hex()} is missing") from None
            node = self._decoded[ref] = decode(encoded)
            if node == _BLANK or not isinstance(node, list):
                raise Halt(f"malformed state trie node {ref.hex()}")
        return node

    def _ref(self, node: Node) -> Node:
        """How a parent refers to ``node``: the node itself when its encoding is short."""
        if node == _BLANK:
            return _BLANK
        encoded = encode(node)
        if len(encoded) < 32:
            return node
        node_hash = keccak256(encoded)
        self._write(node_hash, encoded)
        self._decoded[node_hash] = node
        return node_hash

    def _apply(self, node: Node, changes: list[Change]) -> Node:
        """``node`` (decoded, or blank) after ``changes``, paths relative to it, sorted."""
        if not changes:
            return node
        if node == _BLANK:
            return self._build([(path, value) for path, value in changes if value is not None])
        assert isinstance(node, list)
        if len(node) == 17:
            return self._apply_branch(node, changes)
        node_path, leaf = _unprefix(node[0] if isinstance(node[0], bytes) else b"")
        if leaf:
            value = node[1]
            if not isinstance(value, bytes):
                raise Halt("malformed state trie node: leaf value is a list")
            # One key: rebuild from it and the changes (a change to the same key wins).
            items = {node_path: value}
            for path, new in changes:
                if new is None:
                    items.pop(path, None)
                else:
                    items[path] = new
            return self._build(sorted(items.items()))
        return self._apply_extension(node_path, node[1], changes)

    def _apply_extension(self, node_path: Nibbles, child: Node, changes: list[Change]) -> Node:
        shared = min(_common_prefix(node_path, path) for path, _ in changes)
        if shared == len(node_path):
            below = self._apply(self._child(child), [(path[shared:], v) for path, v in changes])
            return self._prefixed(node_path, below)
        # Some change leaves the extension's path at nibble ``shared``: split it there.
        branch: list[Node] = [_BLANK] * 17
        rest = node_path[shared + 1 :]
        branch[node_path[shared]] = child if not rest else self._ref([_hex_prefix(rest, False), child])
        below = self._apply_branch(branch, [(path[shared:], v) for path, v in changes])
        return self._prefixed(node_path[:shared], below)

    def _apply_branch(self, node: list[Node], changes: list[Change]) -> Node:
        branch = list(node)
        start = 0
        if not changes[0][0]:  # the branch's own value
            branch[16] = changes[0][1] or _BLANK
            start = 1
        for nibble, below in _by_first_nibble(changes[start:]):
            branch[nibble] = self._ref(self._apply(self._child(branch[nibble]), below))
        return self._normalized_branch(branch)

    def _normalized_branch(self, branch: list[Node]) -> Node:
        """A branch left with fewer than two entries becomes what remains of it."""
        children = [i for i in range(16) if branch[i] != _BLANK]
        if len(children) + (branch[16] != _BLANK) >= 2:
            return branch
        if not children:
            return _BLANK if branch[16] == _BLANK else [_hex_prefix(b"", True), branch[16]]
        only = children[0]
        return self._prefixed(bytes([only]), self._child(branch[only]))

    def _prefixed(self, prefix: Nibbles, node: Node) -> Node:
        """``node`` under a path ``prefix``: the prefix joins a leaf's or extension's path."""
        if not prefix or node == _BLANK:
            return node
        assert isinstance(node, list)
        if len(node) == 17:
            return [_hex_prefix(prefix, False), self._ref(node)]
        path, leaf = _unprefix(node[0] if isinstance(node[0], bytes) else b"")
        return [_hex_prefix(prefix + path, leaf), node[1]]

    def _build(self, items: list[tuple[Nibbles, bytes]]) -> Node:
        """A trie of ``items`` (distinct, sorted paths) built from nothing."""
        if not items:
            return _BLANK
        if len(items) == 1:
            path, value = items[0]
            return [_hex_prefix(path, True), value]
        shared = _common_prefix(items[0][0], items[-1][0])  # sorted: first and last bound all
        if shared:
            return self._prefixed(items[0][0][:shared], self._build([(p[shared:], v) for p, v in items]))
        branch: list[Node] = [_BLANK] * 17
        start = 0
        if not items[0][0]:
            branch[16] = items[0][1]
            start = 1
        for nibble, below in _by_first_nibble(items[start:]):
            branch[nibble] = self._ref(self._build(below))
        return branch


_Value = TypeVar("_Value")


def _by_first_nibble(items: list[tuple[Nibbles, _Value]]) -> Iterator[tuple[int, list[tuple[Nibbles, _Value]]]]:
    """Runs of ``items`` (sorted, no path empty) with the same first nibble, and that nibble,
    with it taken off their paths."""
    start = 0
    while start < len(items):
        nibble = items[start][0][0]
        end = start
        while end < len(items) and items[end][0][0] == nibble:
            end += 1
        yield nibble, [(path[1:], value) for path, value in items[start:end]]
        start = end
