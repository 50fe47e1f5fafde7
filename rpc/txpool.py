"""The pool and raw-encoding methods: txpool_status / content / contentFrom / inspect and
debug_getRawTransaction / RawReceipts / RawBlock / RawHeader, in go-ethereum's shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eth_utils.address import to_checksum_address

from primitives.transactions import Transaction
from rpc import render
from rpc.api import NodeBackend
from rpc.codec import Args, BlockId, data, parse_address, parse_block_ref, parse_hash, quantity
from rpc.errors import header_not_found
from rpc.types import BlockView

JsonObject = dict[str, object]


def _by_sender(txs: Sequence[Transaction], entry: Callable[[Transaction], object]) -> JsonObject:
    """{checksummed sender: {decimal nonce: entry}} as geth keys txpool_content."""
    result: dict[str, JsonObject] = {}
    for tx in txs:
        result.setdefault(to_checksum_address(tx.sender), {})[str(tx.nonce)] = entry(tx)
    return dict(result)


def _pending_object(tx: Transaction) -> JsonObject:
    return render.transaction(tx, None, tx.max_fee_per_gas)


def _summary(tx: Transaction) -> str:
    """txpool_inspect's one line per transaction."""
    to = "contract creation" if tx.to is None else to_checksum_address(tx.to)
    return f"{to}: {tx.value} wei + {tx.gas_limit} gas × {tx.max_fee_per_gas} wei"


class PoolMethods:
    """txpool_* and debug_getRaw* over one NodeBackend."""

    def __init__(self, backend: NodeBackend, block: Callable[[BlockId], BlockView | None]) -> None:
        """``block`` finds the block an argument names (number, tag or hash)."""
        self._backend = backend
        self._block = block

    def methods(self) -> dict[str, tuple[int, Callable[[Args], object]]]:
        """name -> (most arguments, handler)."""
        return {
            "txpool_status": (0, self._status),
            "txpool_content": (0, self._content),
            "txpool_contentFrom": (1, self._content_from),
            "txpool_inspect": (0, self._inspect),
            "debug_getRawTransaction": (1, self._raw_transaction),
            "debug_getRawReceipts": (1, self._raw_receipts),
            "debug_getRawBlock": (1, self._raw_block),
            "debug_getRawHeader": (1, self._raw_header),
        }

    def _status(self, args: Args) -> object:
        content = self._backend.pool_content()
        return {"pending": quantity(len(content.pending)), "queued": quantity(len(content.queued))}

    def _content(self, args: Args) -> object:
        content = self._backend.pool_content()
        return {"pending": _by_sender(content.pending, _pending_object),
                "queued": _by_sender(content.queued, _pending_object)}

    def _content_from(self, args: Args) -> object:
        content = self._backend.pool_content(args.required(0, parse_address))
        return {
            "pending": {str(tx.nonce): _pending_object(tx) for tx in content.pending},
            "queued": {str(tx.nonce): _pending_object(tx) for tx in content.queued},
        }

    def _inspect(self, args: Args) -> object:
        content = self._backend.pool_content()
        return {"pending": _by_sender(content.pending, _summary),
                "queued": _by_sender(content.queued, _summary)}

    def _raw_transaction(self, args: Args) -> object:
        found = self._backend.transaction(args.required(0, parse_hash))
        return "0x" if found is None else data(found[0].raw)

    def _named_block(self, args: Args) -> BlockView:
        view = self._block(args.required(0, parse_block_ref))
        if view is None:
            raise header_not_found()
        return view

    def _raw_receipts(self, args: Args) -> object:
        view = self._named_block(args)
        receipts = self._backend.block_receipts(view.header.number)
        return [data(found.receipt.encode()) for found in receipts]

    def _raw_block(self, args: Args) -> object:
        return data(render.block_rlp(self._named_block(args)))

    def _raw_header(self, args: Args) -> object:
        return data(self._named_block(args).header.encode())
