"""JSON shapes of blocks, transactions, receipts, logs and batches, as go-ethereum answers them."""

from __future__ import annotations

import rlp

from primitives.blocks import EMPTY_OMMERS_HASH, Header
from primitives.transactions import ACCESS_LIST_TX, DYNAMIC_FEE_TX, LEGACY_TX, Transaction
from primitives.types import Hash32
from rpc.codec import data, quantity
from rpc.types import (
    AccountProof,
    BatchView,
    BlockView,
    FeeHistory,
    LogView,
    ReceiptView,
    TxLocation,
)

JsonObject = dict[str, object]

_RLP_LIST = 0xC0
_EMPTY_RLP_LIST = bytes([_RLP_LIST])


def block_size(view: BlockView) -> int:
    """Length of the block's RLP encoding, from the lengths of its parts (a wallet polling a
    block of 20,000 transactions had it encoded for each request)."""
    # A typed transaction is an RLP string of at least two bytes: its raw bytes and a prefix.
    txs = sum(len(tx.raw) if tx.tx_type == LEGACY_TX else _prefix_size(len(tx.raw)) + len(tx.raw)
              for tx in view.transactions)
    body = len(view.header.encode()) + _prefix_size(txs) + txs + 2 * len(_EMPTY_RLP_LIST)
    return _prefix_size(body) + body


def _prefix_size(length: int) -> int:
    """Bytes of the RLP prefix of a list, or of a string of two bytes or more, of ``length``."""
    return len(rlp.codec.length_prefix(length, _RLP_LIST))


def block_rlp(view: BlockView) -> bytes:
    """The block's RLP encoding [header, transactions, ommers, withdrawals]."""
    # Legacy transactions are RLP lists already; typed ones are embedded as RLP strings.
    txs = b"".join(
        tx.raw if tx.tx_type == LEGACY_TX else rlp.encode(tx.raw) for tx in view.transactions
    )
    body = (
        view.header.encode()
        + rlp.codec.length_prefix(len(txs), _RLP_LIST)
        + txs
        + _EMPTY_RLP_LIST
        + _EMPTY_RLP_LIST
    )
    return bytes(rlp.codec.length_prefix(len(body), _RLP_LIST)) + bytes(body)


def header_fields(header: Header) -> JsonObject:
    """Header fields of a block object (a post-merge Cancun header)."""
    return {
        "number": quantity(header.number),
        "hash": data(header.hash),
        "parentHash": data(header.parent_hash),
        "nonce": data(b"\x00" * 8),
        "mixHash": data(header.prev_randao),
        "sha3Uncles": data(EMPTY_OMMERS_HASH),
        "logsBloom": data(header.logs_bloom),
        "transactionsRoot": data(header.transactions_root),
        "stateRoot": data(header.state_root),
        "receiptsRoot": data(header.receipts_root),
        "miner": data(header.coinbase),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": data(header.extra_data),
        "gasLimit": quantity(header.gas_limit),
        "gasUsed": quantity(header.gas_used),
        "timestamp": quantity(header.timestamp),
        "baseFeePerGas": quantity(header.base_fee_per_gas),
        "withdrawalsRoot": data(header.withdrawals_root),
        "blobGasUsed": quantity(header.blob_gas_used),
        "excessBlobGas": quantity(header.excess_blob_gas),
        "parentBeaconBlockRoot": data(header.parent_beacon_block_root),
    }


def block(view: BlockView, full_transactions: bool) -> JsonObject:
    """A block object with transaction hashes or full transaction objects."""
    transactions: list[object]
    if full_transactions:
        block_hash = view.header.hash
        transactions = [
            block_transaction(view, block_hash, index) for index in range(len(view.transactions))
        ]
    else:
        transactions = [data(tx.hash) for tx in view.transactions]
    return {
        **header_fields(view.header),
        "size": quantity(block_size(view)),
        "transactions": transactions,
        "uncles": [],
        "withdrawals": [],
    }


def block_transaction(view: BlockView, block_hash: Hash32, index: int) -> JsonObject:
    """The transaction at ``index`` of a block, priced at the block's base fee.

    ``block_hash`` is ``view.header.hash``, passed in so a block's hash is computed once.
    """
    header = view.header
    tx = view.transactions[index]
    location = TxLocation(block_hash, header.number, index, header.timestamp)
    return transaction(tx, location, tx.effective_gas_price(header.base_fee_per_gas))


def transaction(tx: Transaction, location: TxLocation | None, gas_price: int) -> JsonObject:
    """A transaction object; block fields are null while it is pending.

    ``gas_price`` is the price paid once included; geth shows a pending one's fee cap.
    """
    result: JsonObject = {
        "blockHash": None if location is None else data(location.block_hash),
        "blockNumber": None if location is None else quantity(location.block_number),
        "transactionIndex": None if location is None else quantity(location.index),
        "blockTimestamp": None if location is None else quantity(location.block_timestamp),
        "hash": data(tx.hash),
        "type": quantity(tx.tx_type),
        "from": data(tx.sender),
        "to": None if tx.to is None else data(tx.to),
        "nonce": quantity(tx.nonce),
        "gas": quantity(tx.gas_limit),
        "gasPrice": quantity(gas_price),
        "value": quantity(tx.value),
        "input": data(tx.data),
        "v": quantity(tx.v),
        "r": quantity(tx.r),
        "s": quantity(tx.s),
    }
    if tx.chain_id is not None:
        result["chainId"] = quantity(tx.chain_id)
    if tx.tx_type in (ACCESS_LIST_TX, DYNAMIC_FEE_TX):
        result["yParity"] = quantity(tx.v)
        result["accessList"] = [
            {
                "address": data(entry.address),
                "storageKeys": [data(key.to_bytes(32, "big")) for key in entry.storage_keys],
            }
            for entry in tx.access_list
        ]
    if tx.tx_type == DYNAMIC_FEE_TX:
        result["maxFeePerGas"] = quantity(tx.max_fee_per_gas)
        result["maxPriorityFeePerGas"] = quantity(tx.max_priority_fee_per_gas)
    return result


def log(view: LogView) -> JsonObject:
    """A log object with its position in the chain."""
    return {
        "address": data(view.log.address),
        "topics": [data(topic) for topic in view.log.topics],
        "data": data(view.log.data),
        "blockNumber": quantity(view.location.block_number),
        "blockHash": data(view.location.block_hash),
        "blockTimestamp": quantity(view.location.block_timestamp),
        "transactionHash": data(view.tx_hash),
        "transactionIndex": quantity(view.location.index),
        "logIndex": quantity(view.log_index),
        "removed": False,
    }


def receipt(view: ReceiptView) -> JsonObject:
    """A transaction receipt object."""
    tx = view.tx
    location = view.location
    consensus = view.receipt
    return {
        "transactionHash": data(tx.hash),
        "transactionIndex": quantity(location.index),
        "blockHash": data(location.block_hash),
        "blockNumber": quantity(location.block_number),
        "from": data(tx.sender),
        "to": None if tx.to is None else data(tx.to),
        "type": quantity(consensus.tx_type),
        "status": quantity(1 if consensus.succeeded else 0),
        "cumulativeGasUsed": quantity(consensus.cumulative_gas_used),
        "gasUsed": quantity(view.gas_used),
        "effectiveGasPrice": quantity(view.effective_gas_price),
        "contractAddress": None if view.contract_address is None else data(view.contract_address),
        "logsBloom": data(consensus.bloom),
        "logs": [
            log(LogView(entry, location, tx.hash, view.first_log_index + i))
            for i, entry in enumerate(consensus.logs)
        ],
    }


def fee_history(history: FeeHistory, with_rewards: bool) -> JsonObject:
    """An eth_feeHistory result; ``reward`` only when percentiles were asked for (as geth)."""
    result: JsonObject = {
        "oldestBlock": quantity(history.oldest_block),
        "baseFeePerGas": [quantity(fee) for fee in history.base_fees],
        "gasUsedRatio": list(history.gas_used_ratios),
    }
    if with_rewards:
        result["reward"] = [[quantity(tip) for tip in block_tips] for block_tips in history.rewards]
    return result


def batch(view: BatchView) -> JsonObject:
    """An l2_getBatch result."""
    return {
        "number": quantity(view.number),
        "firstBlock": quantity(view.first_block),
        "lastBlock": quantity(view.last_block),
        "prevStateRoot": data(view.prev_state_root),
        "stateRoot": data(view.state_root),
        "dataHash": data(view.data_hash),
        "l1TransactionHash": None if view.l1_tx_hash is None else data(view.l1_tx_hash),
        "l1BlockNumber": None if view.l1_block_number is None else quantity(view.l1_block_number),
    }


def account_proof(proof: AccountProof) -> JsonObject:
    """eth_getProof's answer, as EIP-1186 and go-ethereum shape it."""
    return {
        "address": data(proof.address),
        "accountProof": [data(node) for node in proof.proof],
        "balance": quantity(proof.balance),
        "codeHash": data(proof.code_hash),
        "nonce": quantity(proof.nonce),
        "storageHash": data(proof.storage_root),
        "storageProof": [
            {
                "key": data(slot.slot.to_bytes(32, "big")),
                "value": quantity(slot.value),
                "proof": [data(node) for node in slot.proof],
            }
            for slot in proof.storage
        ],
    }
