/* The interface between the host (Python, executor_gpu/native_abi.py) and the interpreter.
 *
 * Everything crosses as flat arrays of 64-bit words. A 256-bit value takes four words,
 * least significant first; an address is a 256-bit value below 2^160.
 * native_abi.py reads these enums from this file, so each member is written
 * `NAME = value,` on its own line and this file is the single source of the layout.
 */
#ifndef EVM_ABI_H
#define EVM_ABI_H

/* Descriptor: one u64 per entry, pointers (host or device) and sizes of one launch. */
enum evm_desc {
    D_N_RUN = 0,        /* launches: slots to run */
    D_RUN = 1,          /* u64[n_run]: tx index for each slot */
    D_TX = 2,           /* u64[n_tx * TX_WORDS] */
    D_TX_DATA = 3,      /* u8: calldata / init code of all txs */
    D_ACCESS = 4,       /* u64[* AL_WORDS]: access lists of all txs */
    D_ENV = 5,          /* u64[ENV_WORDS] */
    D_ACC = 6,          /* u64[n_acc * ACC_WORDS]: accounts known to the host */
    D_ACC_INDEX = 7,    /* i32[mask + 1]: open-addressing index over D_ACC */
    D_ACC_MASK = 8,
    D_SLOT = 9,         /* u64[n_slot * SL_WORDS]: storage slots known to the host */
    D_SLOT_INDEX = 10,  /* i32[mask + 1] */
    D_SLOT_MASK = 11,
    D_CODE = 12,        /* u64[n_code * CD_WORDS] */
    D_CODE_BYTES = 13,  /* u8: all codes */
    D_JUMPDEST = 14,    /* u8: one bit per code byte, set on valid JUMPDESTs */
    D_RESULT = 15,      /* per slot: u64[RS_WORDS] */
    D_ENTRIES = 16,     /* per slot: u64[CAP_ENTRIES * E_WORDS], the accessed state */
    D_ENTRY_INDEX = 17, /* per worker: i32[2 * CAP_ENTRIES] */
    D_JOURNAL = 18,     /* per worker: u64[CAP_JOURNAL * J_WORDS] */
    D_STACK = 19,       /* per worker: u64[CAP_STACK * 4] */
    D_MEMORY = 20,      /* per worker: u8[CAP_MEMORY] */
    D_RETURN = 21,      /* per worker: u8[CAP_RETURN], the last call's return data */
    D_FRAMES = 22,      /* per worker: u64[CAP_FRAMES * FRAME_WORDS] */
    D_LOGS = 23,        /* per slot: u64[CAP_LOGS * LG_WORDS] */
    D_LOG_DATA = 24,    /* per slot: u8[CAP_LOG_DATA] */
    D_OUTPUT = 25,      /* per slot: u8[CAP_OUTPUT], the transaction's return data */
    D_NEW_CODE = 26,    /* per slot: u8[CAP_NEW_CODE], code deployed by the transaction */
    D_CAP_ENTRIES = 27, /* a power of two */
    D_CAP_JOURNAL = 28,
    D_CAP_STACK = 29,
    D_CAP_MEMORY = 30,
    D_CAP_RETURN = 31,
    D_CAP_FRAMES = 32,
    D_CAP_LOGS = 33,
    D_CAP_LOG_DATA = 34,
    D_CAP_OUTPUT = 35,
    D_CAP_NEW_CODE = 36,
    D_KZG_VERIFY = 37,   /* CPU build: c-kzg-4844's verify_kzg_proof, or 0 (the GPU's: always 0) */
    D_KZG_SETTINGS = 38, /* its trusted setup (KZGSettings *) */
    D_WORDS = 40,
};

/* Transaction record. Static checks (fee cap, intrinsic gas) are the host's. */
enum evm_tx {
    TX_SENDER = 0,
    TX_TO = 4,
    TX_VALUE = 8,
    TX_PRICE = 12,      /* effective gas price */
    TX_UPFRONT = 16,    /* gas * max fee + value: balance the sender must hold (< 2^256) */
    TX_NONCE = 20,
    TX_GAS = 21,
    TX_INTRINSIC = 22,
    TX_FLAGS = 23,
    TX_DATA_OFF = 24,
    TX_DATA_LEN = 25,
    TX_ACCESS_OFF = 26, /* first record in D_ACCESS */
    TX_ACCESS_LEN = 27,
    TX_WORDS = 28,
};

enum evm_tx_flags {
    TXF_CREATE = 1,
    TXF_REJECT_EARLY = 2, /* the host rejects it for a reason checked after nonce and code */
    TXF_REJECT_LATE = 4,  /* the host rejects it for a reason checked after the funds */
};

/* Access list record: an address, or an (address, storage key) pair. */
enum evm_access {
    AL_ADDR = 0,
    AL_KEY = 4,
    AL_HAS_KEY = 8,
    AL_WORDS = 9,
};

/* Block environment; every field is a 256-bit value. */
enum evm_env {
    ENV_COINBASE = 0,
    ENV_NUMBER = 4,
    ENV_TIMESTAMP = 8,
    ENV_GAS_LIMIT = 12,
    ENV_BASE_FEE = 16,
    ENV_CHAIN_ID = 20,
    ENV_PREVRANDAO = 24,
    ENV_BLOB_BASE_FEE = 28,
    ENV_N_HASHES = 32,
    ENV_HASHES = 36, /* 256 hashes, most recent first */
    ENV_WORDS = 1060,
};

enum evm_account {
    ACC_ADDR = 0,
    ACC_BALANCE = 4,
    ACC_CODE_HASH = 8,
    ACC_NONCE = 12,
    ACC_CODE = 13, /* index into D_CODE, or -1 when the account has no code */
    ACC_FLAGS = 14,
    ACC_WORDS = 16,
};

enum evm_account_flags {
    AF_EXISTS = 1,
    AF_HAS_STORAGE = 2, /* storage at the batch start, not wiped since (EIP-7610 collisions) */
};

enum evm_slot {
    SL_ADDR = 0,
    SL_KEY = 4,
    SL_VALUE = 8,
    SL_WORDS = 12,
};

enum evm_code {
    CD_OFF = 0,
    CD_LEN = 1,
    CD_JUMPDEST_OFF = 2,
    CD_WORDS = 4,
};

/* Per-slot result. */
enum evm_result {
    RS_STATUS = 0,
    RS_GAS_USED = 1,   /* after the refund */
    RS_REFUND = 2,     /* refund applied */
    RS_N_ENTRIES = 3,
    RS_N_LOGS = 4,
    RS_OUT_LEN = 5,
    RS_NEW_CODE = 6,   /* bytes of D_NEW_CODE used */
    RS_LOG_DATA = 7,   /* bytes of D_LOG_DATA used */
    RS_WHY = 8,        /* with ST_UNSUPPORTED: a precompile's address, or a WHY_* */
    RS_CREATED = 12,   /* address of the contract a creation transaction deployed */
    RS_WORDS = 16,
};

/* Outcome of a slot. Below ST_REJECT_FIRST the transaction is included. */
enum evm_status {
    ST_SUCCESS = 0,
    ST_REVERT = 1,
    ST_OUT_OF_GAS = 2,
    ST_STACK_UNDERFLOW = 3,
    ST_STACK_OVERFLOW = 4,
    ST_BAD_JUMP = 5,
    ST_INVALID_OPCODE = 6,
    ST_STATIC_WRITE = 7,
    ST_RETURNDATA_OOB = 8,
    ST_CREATE_COLLISION = 9,
    ST_CODE_EF = 10,
    ST_PRECOMPILE_FAILURE = 11, /* a precompile's input is invalid (the host words the error) */
    ST_REJECT_FIRST = 32,
    ST_NONCE_TOO_HIGH = 32,
    ST_NONCE_TOO_LOW = 33,
    ST_NONCE_MAX = 34,
    ST_SENDER_NOT_EOA = 35,
    ST_STATIC_REJECT = 36,  /* the state checks before the host's reason passed */
    ST_INSUFFICIENT_FUNDS = 37,
    ST_CONTROL_FIRST = 64,
    ST_NEEDS_KEY = 64,     /* state the host did not give: load the EF_ASSUMED entries, run again */
    ST_RESOURCE = 65,      /* a per-slot buffer is too small: run again with larger ones */
    ST_UNSUPPORTED = 66,   /* a feature the interpreter lacks: use the reference executor */
    ST_SKIPPED = 67,       /* not run: a sequential launch stopped before it */
};

/* Why a transaction went to the reference executor, beside precompile addresses 1-10. */
enum evm_why {
    WHY_HUGE_MEMORY = 16,
    WHY_DELETE_WITH_STORAGE = 18,
};

/* State entry: an account, storage slot or transient slot the transaction accessed. */
enum evm_entry {
    E_KIND = 0,
    E_FLAGS = 1,
    E_ROW = 2,   /* row in D_ACC / D_SLOT it was loaded from, or -1 */
    E_NONCE = 3,
    E_CODE = 4,  /* code reference, see CODE_NEW */
    E_ADDR = 8,
    E_KEY = 12,
    E_VALUE = 16, /* balance of an account, value of a slot */
    E_ORIG = 20,  /* code hash of an account, value of a slot when the transaction started */
    E_WORDS = 24,
};

enum evm_entry_kind {
    EK_ACCOUNT = 1,
    EK_SLOT = 2,
    EK_TSLOT = 3,
};

enum evm_entry_flags {
    EF_LOADED = 1,         /* read from the host's table: part of the read set */
    EF_WARM = 2,
    EF_EXISTS = 4,
    EF_HAS_STORAGE = 8,
    EF_CREATED = 16,       /* created by this transaction (EIP-6780) */
    EF_DESTROYED = 32,     /* deleted at the end of the transaction */
    EF_TOUCHED = 64,       /* deleted at the end when empty (EIP-161) */
    EF_KNOWN = 128,        /* the value fields are valid */
    EF_TOUCH_KEPT = 256,   /* touched in a way no revert undoes (RIPEMD-160, EIP-716) */
    EF_ASSUMED = 512,      /* not in the host's tables, taken as absent: see assume_absent */
};

/* E_CODE values: -1 no code; below CODE_NEW an index into D_CODE; CODE_NEW + offset of a
 * record in D_NEW_CODE: u64 length, the code, then its jumpdest bitmap. */
enum evm_code_ref {
    CODE_NEW = 1073741824,
};

enum evm_log {
    LG_ADDR = 0,
    LG_N_TOPICS = 4,
    LG_DATA_OFF = 5,
    LG_DATA_LEN = 6,
    LG_TOPICS = 8,
    LG_WORDS = 24,
};

enum evm_frame {
    FRAME_WORDS = 33, /* size of the interpreter's call frame record */
};

enum evm_journal {
    J_ENTRY = 0,
    J_FIELD = 1,
    J_OLD = 2,
    J_WORDS = 6,
};

#endif
