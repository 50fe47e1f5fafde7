// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BatchInbox: L1 commitments of l2node batches, signed by the validator set.
/// @notice Anyone may submit a batch; its authority comes from validator signatures
///         holding more than 2/3 of the total weight. Batches form one chain: batch n
///         starts where batch n-1 ended (block range and state root).
///
/// Batch data (the compressed L2 blocks, see l1/codec.py) travels as calldata and is
/// re-emitted in `BatchData` events, so a watcher rebuilds it from L1 alone. A payload
/// larger than one L1 transaction is sent in parts: `appendBatchData` for parts 0..k-1
/// (each a whole number of DATA_PIECE_BYTES pieces), then `commitBatch` with the last
/// part k. Parts are kept per submitter and batch number; part 0 starts over.
///
/// Data hash (independent of how the payload is cut into parts):
///
///   pieces = payload cut into DATA_PIECE_BYTES-byte pieces (the last may be shorter)
///   h_0 = bytes32(0);  h_{i+1} = keccak256(h_i ++ keccak256(piece_i));  dataHash = h_last
///
/// Digest the validators sign for a batch (no EIP-191 prefix; the domain is inside):
///
///   keccak256(abi.encode(
///       "l2node.batch.v1",   // string, ABI-encoded as a dynamic `string`
///       block.chainid,       // uint256, L1 chain id
///       address(this),       // address, this contract
///       l2ChainId,           // uint256
///       batchNumber,         // uint256, 1 for the first batch
///       prevStateRoot,       // bytes32
///       newStateRoot,        // bytes32
///       firstBlock,          // uint64
///       lastBlock,           // uint64
///       dataHash))           // bytes32, see above
///
/// Digest the current validators sign to replace the set (`updateValidators`):
///
///   keccak256(abi.encode("l2node.validators.v1", block.chainid, address(this), l2ChainId,
///                        epoch, signers, weights))   // uint256, address[], uint64[]
///
/// where epoch is validatorEpoch + 1 (0 at deployment), so a signed update applies once.
///
/// Signatures are 65 bytes r || s || v with v in {27, 28} and s in the lower half of
/// the curve order, ordered by strictly ascending signer address (so each signer counts once).
contract BatchInbox {
    /// @notice What the contract keeps per batch (batch 0 is the genesis).
    struct Batch {
        bytes32 stateRoot;
        bytes32 dataHash;
        uint64 firstBlock;
        uint64 lastBlock;
        uint64 l1BlockNumber;
    }

    /// @notice Size of the pieces the data hash is computed over; parts before the last are multiples.
    uint256 public constant DATA_PIECE_BYTES = 4096;

    /// @dev Parts of a batch's data received so far from one submitter.
    struct PendingData {
        bytes32 hash;
        uint64 parts;
        uint64 fromL1Block;
    }

    string private constant DOMAIN = "l2node.batch.v1";
    string private constant VALIDATORS_DOMAIN = "l2node.validators.v1";
    /// @dev secp256k1 order / 2: signatures with a larger s are malleable copies (EIP-2).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint256 public immutable l2ChainId;
    bytes32 public immutable genesisStateRoot;

    address[] private _signers;
    mapping(address => uint64) private _weights;
    uint256 public totalWeight;
    /// @notice Number of validator set updates applied so far.
    uint256 public validatorEpoch;

    uint256 public latestBatchNumber;
    mapping(uint256 => Batch) private _batches;
    mapping(address => mapping(uint256 => PendingData)) private _pending;

    /// @notice Part `part` of the data of batch `batchNumber` sent by `submitter`.
    event BatchData(uint256 indexed batchNumber, address indexed submitter, uint256 part, bytes data);

    /// @notice Batch `batchNumber` is committed; its data is the `parts` BatchData events of
    ///         `submitter` for this batch, the last of them in this transaction, the first
    ///         in L1 block `dataFromL1Block`.
    event BatchCommitted(
        uint256 indexed batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 dataHash,
        uint64 firstBlock,
        uint64 lastBlock,
        address indexed submitter,
        uint256 parts,
        uint256 dataFromL1Block
    );

    /// @notice The validator set was replaced (epoch 0 is the constructor's set).
    event ValidatorsUpdated(uint256 indexed epoch, address[] signers, uint64[] weights);

    error EmptyValidatorSet();
    error LengthMismatch(uint256 signers, uint256 weights);
    error ZeroAddressValidator(uint256 index);
    error DuplicateValidator(address validator);
    error ZeroWeight(address validator);
    error BatchNumberMismatch(uint256 expected, uint256 got);
    error PrevStateRootMismatch(bytes32 expected, bytes32 got);
    error FirstBlockMismatch(uint64 expected, uint64 got);
    error EmptyBlockRange(uint64 firstBlock, uint64 lastBlock);
    error InvalidSignatureLength(uint256 index, uint256 length);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error UnknownSigner(uint256 index, address signer);
    error InsufficientWeight(uint256 signed, uint256 total);
    error UnknownBatch(uint256 batchNumber);
    error BatchAlreadyCommitted(uint256 batchNumber);
    error PartNotPieceAligned(uint256 length);
    error PartOutOfOrder(uint256 expected, uint256 got);
    error EpochMismatch(uint256 expected, uint256 got);

    constructor(uint256 l2ChainId_, bytes32 genesisStateRoot_, address[] memory signers, uint64[] memory weights) {
        _setValidators(signers, weights);
        l2ChainId = l2ChainId_;
        genesisStateRoot = genesisStateRoot_;
        _batches[0] = Batch(genesisStateRoot_, bytes32(0), 0, 0, uint64(block.number));
        emit ValidatorsUpdated(0, signers, weights);
    }

    /// @notice Send part `part` (not the last) of the data of batch `batchNumber`; part 0
    ///         discards what this sender sent for the batch before.
    function appendBatchData(uint256 batchNumber, uint256 part, bytes calldata data) external {
        if (batchNumber <= latestBatchNumber) revert BatchAlreadyCommitted(batchNumber);
        if (data.length == 0 || data.length % DATA_PIECE_BYTES != 0) revert PartNotPieceAligned(data.length);
        PendingData storage pending = _pending[msg.sender][batchNumber];
        bytes32 hash;
        if (part == 0) {
            pending.fromL1Block = uint64(block.number);
        } else {
            if (part != pending.parts) revert PartOutOfOrder(pending.parts, part);
            hash = pending.hash;
        }
        pending.hash = _foldPieces(hash, data);
        pending.parts = uint64(part + 1);
        emit BatchData(batchNumber, msg.sender, part, data);
    }

    /// @notice Commit batch `batchNumber` covering L2 blocks firstBlock..lastBlock, moving the
    ///         state from prevStateRoot to newStateRoot. `data` is the last part (number
    ///         `part`) of the batch data; parts 0..part-1 came from appendBatchData by the
    ///         same sender (part 0: the whole payload is `data`).
    function commitBatch(
        uint256 batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        uint64 firstBlock,
        uint64 lastBlock,
        uint256 part,
        bytes calldata data,
        bytes[] calldata signatures
    ) external {
        _checkContinuity(batchNumber, prevStateRoot, firstBlock, lastBlock);
        (bytes32 dataHash, uint256 fromL1Block) = _completeData(batchNumber, part, data);
        _checkQuorum(batchDigest(batchNumber, prevStateRoot, newStateRoot, firstBlock, lastBlock, dataHash), signatures);

        latestBatchNumber = batchNumber;
        _batches[batchNumber] = Batch(newStateRoot, dataHash, firstBlock, lastBlock, uint64(block.number));
        emit BatchCommitted(
            batchNumber, prevStateRoot, newStateRoot, dataHash, firstBlock, lastBlock, msg.sender, part + 1, fromL1Block
        );
    }

    /// @notice Replace the validator set with `signers` and `weights`, signed by more than
    ///         2/3 of the current set's weight over validatorsDigest(epoch, signers, weights).
    function updateValidators(
        uint256 epoch,
        address[] calldata signers,
        uint64[] calldata weights,
        bytes[] calldata signatures
    ) external {
        if (epoch != validatorEpoch + 1) revert EpochMismatch(validatorEpoch + 1, epoch);
        _checkQuorum(validatorsDigest(epoch, signers, weights), signatures);
        address[] memory old = _signers;
        for (uint256 i = 0; i < old.length; i++) {
            delete _weights[old[i]];
        }
        _setValidators(signers, weights);
        validatorEpoch = epoch;
        emit ValidatorsUpdated(epoch, signers, weights);
    }

    /// @notice The digest the current validators sign to install `signers` with `weights`.
    function validatorsDigest(uint256 epoch, address[] calldata signers, uint64[] calldata weights)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(VALIDATORS_DOMAIN, block.chainid, address(this), l2ChainId, epoch, signers, weights));
    }

    /// @notice The digest validators sign for a batch (see the contract's documentation).
    function batchDigest(
        uint256 batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        uint64 firstBlock,
        uint64 lastBlock,
        bytes32 dataHash
    ) public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN,
                block.chainid,
                address(this),
                l2ChainId,
                batchNumber,
                prevStateRoot,
                newStateRoot,
                firstBlock,
                lastBlock,
                dataHash
            )
        );
    }

    /// @notice Batch `batchNumber` (0 is the genesis); reverts for batches not committed.
    function getBatch(uint256 batchNumber) external view returns (Batch memory) {
        if (batchNumber > latestBatchNumber) revert UnknownBatch(batchNumber);
        return _batches[batchNumber];
    }

    /// @notice The registered validators and their weights, in registration order.
    function validators() external view returns (address[] memory signers, uint64[] memory weights) {
        signers = _signers;
        weights = new uint64[](signers.length);
        for (uint256 i = 0; i < signers.length; i++) {
            weights[i] = _weights[signers[i]];
        }
    }

    /// @notice Weight of `validator`, 0 when it is not registered.
    function weightOf(address validator) external view returns (uint64) {
        return _weights[validator];
    }

    /// @notice The data hash of `payload` (see the contract's documentation).
    function dataHashOf(bytes calldata payload) external pure returns (bytes32) {
        return _foldPieces(bytes32(0), payload);
    }

    function _setValidators(address[] memory signers, uint64[] memory weights) private {
        if (signers.length == 0) revert EmptyValidatorSet();
        if (signers.length != weights.length) revert LengthMismatch(signers.length, weights.length);
        uint256 total;
        for (uint256 i = 0; i < signers.length; i++) {
            address signer = signers[i];
            if (signer == address(0)) revert ZeroAddressValidator(i);
            if (_weights[signer] != 0) revert DuplicateValidator(signer);
            if (weights[i] == 0) revert ZeroWeight(signer);
            _weights[signer] = weights[i];
            total += weights[i];
        }
        _signers = signers;
        totalWeight = total;
    }

    /// @dev Batch `batchNumber` must follow the latest one: number, state root, block range.
    function _checkContinuity(uint256 batchNumber, bytes32 prevStateRoot, uint64 firstBlock, uint64 lastBlock)
        private
        view
    {
        uint256 latest = latestBatchNumber;
        if (batchNumber != latest + 1) revert BatchNumberMismatch(latest + 1, batchNumber);
        Batch storage previous = _batches[latest];
        if (prevStateRoot != previous.stateRoot) revert PrevStateRootMismatch(previous.stateRoot, prevStateRoot);
        if (firstBlock != previous.lastBlock + 1) revert FirstBlockMismatch(previous.lastBlock + 1, firstBlock);
        if (lastBlock < firstBlock) revert EmptyBlockRange(firstBlock, lastBlock);
    }

    /// @dev The data hash of the batch whose last part is `data`, and the L1 block of its first part.
    function _completeData(uint256 batchNumber, uint256 part, bytes calldata data)
        private
        returns (bytes32 dataHash, uint256 fromL1Block)
    {
        fromL1Block = block.number;
        if (part > 0) {
            PendingData storage pending = _pending[msg.sender][batchNumber];
            if (part != pending.parts) revert PartOutOfOrder(pending.parts, part);
            dataHash = pending.hash;
            fromL1Block = pending.fromL1Block;
            delete _pending[msg.sender][batchNumber];
        }
        dataHash = _foldPieces(dataHash, data);
        emit BatchData(batchNumber, msg.sender, part, data);
    }

    /// @dev Extends `hash` over the pieces of `data`; each piece is hashed in scratch memory
    ///      past the free memory pointer, so a large part costs no memory growth per piece.
    function _foldPieces(bytes32 hash, bytes calldata data) private pure returns (bytes32) {
        uint256 length = data.length;
        for (uint256 offset = 0; offset < length; offset += DATA_PIECE_BYTES) {
            uint256 size = length - offset < DATA_PIECE_BYTES ? length - offset : DATA_PIECE_BYTES;
            assembly ("memory-safe") {
                let buffer := mload(0x40)
                calldatacopy(buffer, add(data.offset, offset), size)
                mstore(0x00, hash)
                mstore(0x20, keccak256(buffer, size))
                hash := keccak256(0x00, 0x40)
            }
        }
        return hash;
    }

    function _checkQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 signed;
        address last;
        for (uint256 i = 0; i < signatures.length; i++) {
            address signer = _recover(digest, signatures[i], i);
            if (signer <= last) revert SignersNotAscending(i);
            uint64 weight = _weights[signer];
            if (weight == 0) revert UnknownSigner(i, signer);
            signed += weight;
            last = signer;
        }
        if (3 * signed <= 2 * totalWeight) revert InsufficientWeight(signed, totalWeight);
    }

    function _recover(bytes32 digest, bytes calldata signature, uint256 index) private pure returns (address) {
        if (signature.length != 65) revert InvalidSignatureLength(index, signature.length);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert InvalidSignature(index);
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature(index);
        return signer;
    }
}
