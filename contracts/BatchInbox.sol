// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BatchInbox: L1 commitments of l2node batches, signed by the validator set.
/// @notice Anyone may submit a batch; its authority comes from validator signatures
///         holding more than 2/3 of the total weight. Batches form one chain: batch n
///         starts where batch n-1 ended (block range and state root).
///
/// Digest the validators sign (no EIP-191 prefix; the domain is inside the encoding):
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
///       keccak256(data)))    // bytes32, hash of the calldata payload
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

    string private constant DOMAIN = "l2node.batch.v1";
    /// @dev secp256k1 order / 2: signatures with a larger s are malleable copies (EIP-2).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint256 public immutable l2ChainId;
    bytes32 public immutable genesisStateRoot;

    address[] private _signers;
    mapping(address => uint64) private _weights;
    uint256 public totalWeight;

    uint256 public latestBatchNumber;
    mapping(uint256 => Batch) private _batches;

    event BatchCommitted(
        uint256 indexed batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 dataHash,
        uint64 firstBlock,
        uint64 lastBlock
    );

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

    constructor(uint256 l2ChainId_, bytes32 genesisStateRoot_, address[] memory signers, uint64[] memory weights) {
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
        l2ChainId = l2ChainId_;
        genesisStateRoot = genesisStateRoot_;
        _batches[0] = Batch(genesisStateRoot_, bytes32(0), 0, 0, uint64(block.number));
    }

    /// @notice Commit batch `batchNumber` covering L2 blocks firstBlock..lastBlock, whose
    ///         transaction data is `data`, moving the state from prevStateRoot to newStateRoot.
    function commitBatch(
        uint256 batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        uint64 firstBlock,
        uint64 lastBlock,
        bytes calldata data,
        bytes[] calldata signatures
    ) external {
        uint256 latest = latestBatchNumber;
        if (batchNumber != latest + 1) revert BatchNumberMismatch(latest + 1, batchNumber);
        Batch storage previous = _batches[latest];
        if (prevStateRoot != previous.stateRoot) revert PrevStateRootMismatch(previous.stateRoot, prevStateRoot);
        if (firstBlock != previous.lastBlock + 1) revert FirstBlockMismatch(previous.lastBlock + 1, firstBlock);
        if (lastBlock < firstBlock) revert EmptyBlockRange(firstBlock, lastBlock);

        bytes32 dataHash = keccak256(data);
        _checkQuorum(batchDigest(batchNumber, prevStateRoot, newStateRoot, firstBlock, lastBlock, dataHash), signatures);

        latestBatchNumber = batchNumber;
        _batches[batchNumber] = Batch(newStateRoot, dataHash, firstBlock, lastBlock, uint64(block.number));
        emit BatchCommitted(batchNumber, prevStateRoot, newStateRoot, dataHash, firstBlock, lastBlock);
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
