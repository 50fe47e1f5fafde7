/* One transaction in one slot: validity against the state, gas purchase, the call or
 * creation, refunds and EIP-161 clean-up. The coinbase fee is the host's (a commutative
 * delta, so that it does not make every pair of transactions conflict). */
#ifndef EVM_TX_H
#define EVM_TX_H

#include "evm_interp.h"

EVM_FN void tx_status(EvmCtx *c, int status) { c->res[RS_STATUS] = (u64)status; }

/* Sets up the transaction's frame and runs it; returns with RS_STATUS and frame 0's gas set. */
EVM_FN_BIG void evm_execute(EvmCtx *c, i64 s, u64 gas) {
    const u64 *tx = c->tx;
    EvmFrame *f = &c->frames[0];
    f->caller = c->origin;
    f->value = u256_load(tx + TX_VALUE);
    f->gas = gas;
    f->stack_base = 0;
    f->sp = 0;
    f->mem_base = 0;
    f->mem_size = 0;
    f->pc = 0;
    f->log_mark = 0;
    f->log_data_mark = 0;
    f->new_code_mark = 0;
    f->refund_mark = 0;
    f->is_static = 0;
    f->calldata = 0;
    f->calldata_len = 0;
    f->create_entry = 0;
    f->ret_off = 0;
    f->ret_len = 0;
    const u8 *data = c->tx_data + tx[TX_DATA_OFF];
    u64 len = tx[TX_DATA_LEN];
    if (tx[TX_FLAGS] & TXF_CREATE) {
        u256 addr = create_address(c->origin, tx[TX_NONCE]);
        i64 t = ent_account(c, addr);
        if (t < 0 || warm_entry(c, t) < 0) return;
        f->kind = 0xf0;
        f->address = addr;
        f->create_entry = (u64)t;
        u256_store(c->res + RS_CREATED, addr);
        if (creation_collision(c, t)) {
            tx_status(c, ST_CREATE_COLLISION);
            f->gas = 0;
            return;
        }
        f->journal_mark = c->n_jrn;
        if (set_nonce(c, t, 1) || add_flags(c, t, EF_CREATED | EF_EXISTS) ||
            message_begin(c, s, t, f->value, 1, 0) || frame_set_initcode(c, f, data, len))
            return;
        u64 initcode_gas = 2 * words_of(len);
        if (f->gas < initcode_gas) {
            frame_end(c, ST_OUT_OF_GAS, 0, 0);
            return;
        }
        f->gas -= initcode_gas;
    } else {
        u256 to = u256_load(tx + TX_TO);
        i64 t = ent_account(c, to);
        if (t < 0 || warm_entry(c, t) < 0) return;
        f->kind = 0;
        f->address = to;
        f->calldata = data;
        f->calldata_len = len;
        f->journal_mark = c->n_jrn;
        if (message_begin(c, s, t, f->value, 1, 1)) return;
        code_of(c, ent_at(c, t)[E_CODE], &f->code, &f->code_len, &f->jumpdest);
        if (is_precompile(to)) {
            run_precompile(c, f, to);
            return;
        }
    }
    evm_interpret(c);
}

/* EIP-161 and EIP-6780 at the end of a transaction: touched empty accounts and contracts
 * that destroyed themselves no longer exist. The coinbase is left to the host, which
 * checks it after crediting the fee. */
EVM_FN void evm_cleanup(EvmCtx *c) {
    for (u64 e = 0; e < c->n_ent; e++) {
        u64 *p = ent_at(c, (i64)e);
        if (p[E_KIND] != EK_ACCOUNT || !(p[E_FLAGS] & EF_EXISTS)) continue;
        int gone = (p[E_FLAGS] & EF_DESTROYED) != 0;
        if ((p[E_FLAGS] & (EF_TOUCHED | EF_TOUCH_KEPT)) && account_empty(c, (i64)e) &&
            !u256_eq(u256_load(p + E_ADDR), c->coinbase))
            gone = 1;
        if (!gone) continue;
        if ((p[E_FLAGS] & EF_HAS_STORAGE) && !(p[E_FLAGS] & EF_CREATED)) {
            /* Deleting an account wipes its storage: left to the reference executor. */
            unsupported(c, WHY_DELETE_WITH_STORAGE);
            return;
        }
        p[E_FLAGS] &= ~(u64)EF_EXISTS;
    }
}

/* geth's order of the state checks; the host's own reasons slot in between. */
EVM_FN int tx_check(EvmCtx *c, const u64 *sp) {
    const u64 *tx = c->tx;
    if (tx[TX_NONCE] > sp[E_NONCE]) return ST_NONCE_TOO_HIGH;
    if (tx[TX_NONCE] < sp[E_NONCE]) return ST_NONCE_TOO_LOW;
    if (sp[E_NONCE] == 0xFFFFFFFFFFFFFFFFULL) return ST_NONCE_MAX;
    if (sp[E_CODE] != (u64)-1) return ST_SENDER_NOT_EOA;
    if (tx[TX_FLAGS] & TXF_REJECT_EARLY) return ST_STATIC_REJECT;
    if (u256_lt(u256_load(sp + E_VALUE), u256_load(tx + TX_UPFRONT))) return ST_INSUFFICIENT_FUNDS;
    if (tx[TX_FLAGS] & TXF_REJECT_LATE) return ST_STATIC_REJECT;
    return ST_SUCCESS;
}

EVM_FN_BIG void evm_transaction(EvmCtx *c) {
    const u64 *tx = c->tx;
    i64 s = ent_account(c, c->origin);
    if (s < 0) return;
    const u64 *sp = ent_at(c, s);
    int st = tx_check(c, sp);
    if (st != ST_SUCCESS) {
        tx_status(c, st);
        return;
    }
    u64 nonce = sp[E_NONCE];
    u256 balance = u256_load(sp + E_VALUE);
    u256 price = c->gas_price;
    if (set_value(c, s, u256_sub(balance, u256_mul(u256_of(tx[TX_GAS]), price))) ||
        set_nonce(c, s, nonce + 1) || warm_entry(c, s) < 0)
        return;
    for (u64 i = 0; i < tx[TX_ACCESS_LEN]; i++) {
        const u64 *al = c->access + (tx[TX_ACCESS_OFF] + i) * AL_WORDS;
        u256 addr = u256_load(al + AL_ADDR);
        i64 e = al[AL_HAS_KEY] ? ent_get(c, EK_SLOT, addr, u256_load(al + AL_KEY))
                               : ent_get(c, EK_ACCOUNT, addr, u256_of(0));
        if (e < 0 || warm_entry(c, e) < 0) return;
    }
    evm_execute(c, s, tx[TX_GAS] - tx[TX_INTRINSIC]);
    if (c->abort) return;

    u64 gas_left = c->frames[0].gas;
    u64 used = tx[TX_GAS] - gas_left;
    i64 refund = c->res[RS_STATUS] == ST_SUCCESS ? c->refund : 0;
    if (refund > (i64)(used / 5)) refund = (i64)(used / 5);
    u256 back = u256_mul(u256_of(gas_left + (u64)refund), price);
    if (set_value(c, s, u256_add(u256_load(ent_at(c, s) + E_VALUE), back))) return;
    c->res[RS_GAS_USED] = used - (u64)refund;
    c->res[RS_REFUND] = (u64)refund;
    evm_cleanup(c);
}

/* Runs the transaction of one slot of a launch described by desc (see evm_abi.h), with the
 * scratch arenas (stack, memory, journal...) of worker: one per slot on the device, one per
 * thread on the CPU. */
EVM_FN_BIG void evm_run_slot(const u64 *desc, u64 slot, u64 worker) {
    EvmCtx ctx;
    EvmCtx *c = &ctx;
    u64 txi = ((const u64 *)desc[D_RUN])[slot];
    c->tx = (const u64 *)desc[D_TX] + txi * TX_WORDS;
    c->env = (const u64 *)desc[D_ENV];
    c->acc = (const u64 *)desc[D_ACC];
    c->slot = (const u64 *)desc[D_SLOT];
    c->codes = (const u64 *)desc[D_CODE];
    c->access = (const u64 *)desc[D_ACCESS];
    c->acc_index = (const i32 *)desc[D_ACC_INDEX];
    c->slot_index = (const i32 *)desc[D_SLOT_INDEX];
    c->acc_mask = desc[D_ACC_MASK];
    c->slot_mask = desc[D_SLOT_MASK];
    c->tx_data = (const u8 *)desc[D_TX_DATA];
    c->code_bytes = (const u8 *)desc[D_CODE_BYTES];
    c->jumpdest = (const u8 *)desc[D_JUMPDEST];
    c->cap_ent = desc[D_CAP_ENTRIES];
    c->cap_jrn = desc[D_CAP_JOURNAL];
    c->cap_stack = desc[D_CAP_STACK];
    c->cap_mem = desc[D_CAP_MEMORY];
    c->cap_ret = desc[D_CAP_RETURN];
    c->cap_frames = desc[D_CAP_FRAMES];
    c->cap_logs = desc[D_CAP_LOGS];
    c->cap_log_data = desc[D_CAP_LOG_DATA];
    c->cap_out = desc[D_CAP_OUTPUT];
    c->cap_new_code = desc[D_CAP_NEW_CODE];
    c->kzg_verify = desc[D_KZG_VERIFY];
    c->kzg_settings = (const void *)desc[D_KZG_SETTINGS];
    c->res = (u64 *)desc[D_RESULT] + slot * RS_WORDS;
    c->ent = (u64 *)desc[D_ENTRIES] + slot * c->cap_ent * E_WORDS;
    c->ent_index = (i32 *)desc[D_ENTRY_INDEX] + worker * 2 * c->cap_ent;
    c->jrn = (u64 *)desc[D_JOURNAL] + worker * c->cap_jrn * J_WORDS;
    c->stack = (u64 *)desc[D_STACK] + worker * c->cap_stack * 4;
    c->mem = (u8 *)desc[D_MEMORY] + worker * c->cap_mem;
    c->ret = (u8 *)desc[D_RETURN] + worker * c->cap_ret;
    c->frames = (EvmFrame *)((u64 *)desc[D_FRAMES] + worker * c->cap_frames * FRAME_WORDS);
    c->logs = (u64 *)desc[D_LOGS] + slot * c->cap_logs * LG_WORDS;
    c->log_data = (u8 *)desc[D_LOG_DATA] + slot * c->cap_log_data;
    c->out = (u8 *)desc[D_OUTPUT] + slot * c->cap_out;
    c->new_code = (u8 *)desc[D_NEW_CODE] + slot * c->cap_new_code;
    for (int i = 0; i < RS_WORDS; i++) c->res[i] = 0;
    for (u64 i = 0; i < 2 * c->cap_ent; i++) c->ent_index[i] = -1;
    c->n_ent = 0;
    c->n_jrn = 0;
    c->ret_len = 0;
    c->depth = 0;
    c->n_logs = 0;
    c->n_log_data = 0;
    c->n_new_code = 0;
    c->refund = 0;
    c->abort = 0;
    c->n_assumed = 0;
    c->origin = u256_load(c->tx + TX_SENDER);
    c->gas_price = u256_load(c->tx + TX_PRICE);
    c->coinbase = u256_load(c->env + ENV_COINBASE);
    evm_transaction(c);
    /* A run on assumed state only names keys, whatever else it ended with. */
    if (c->n_assumed) c->abort = ST_NEEDS_KEY;
    if (c->abort) c->res[RS_STATUS] = (u64)c->abort;
    c->res[RS_N_ENTRIES] = c->n_ent;
    c->res[RS_N_LOGS] = c->n_logs;
    c->res[RS_LOG_DATA] = c->n_log_data;
    c->res[RS_NEW_CODE] = c->n_new_code;
}

#endif
