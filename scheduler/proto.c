/*
 * proto.c - encoder/decoder of the scheduler protocol (formats in proto.h).
 *
 * The encoder records an allocation failure once (b->failed) and ignores the
 * writes after it, so callers check once at the end instead of after every
 * field. The decoder likewise sets r->bad on the first short read and returns
 * zeros afterwards; callers check tsr_rbuf_done once.
 */
#include "proto.h"

#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "transport.h"

/* ---- encoder ---------------------------------------------------------------- */

void tsr_wbuf_init(tsr_wbuf_t *b, tsr_mem_t *mem)
{
    memset(b, 0, sizeof(*b));
    b->mem = mem;
}

void tsr_wbuf_free(tsr_wbuf_t *b)
{
    tsr_mem_free(b->mem, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tsr_wbuf_bytes(tsr_wbuf_t *b, const void *p, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (tsr_mem_grow(b->mem, (void **)&b->data, &b->cap, b->len + n, 1) != 0) {
        b->failed = true;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_le(tsr_wbuf_t *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    tsr_wbuf_bytes(b, tmp, n);
}

void tsr_wbuf_u8(tsr_wbuf_t *b, uint8_t v)
{
    tsr_wbuf_bytes(b, &v, 1);
}
void tsr_wbuf_u32(tsr_wbuf_t *b, uint32_t v)
{
    put_le(b, v, 4);
}
void tsr_wbuf_u64(tsr_wbuf_t *b, uint64_t v)
{
    put_le(b, v, 8);
}
void tsr_wbuf_i32(tsr_wbuf_t *b, int32_t v)
{
    put_le(b, (uint32_t)v, 4);
}

void tsr_wbuf_strn(tsr_wbuf_t *b, const char *s, size_t n)
{
    if (n > UINT32_MAX - 1) {
        b->failed = true;
        return;
    }
    tsr_wbuf_u32(b, (uint32_t)n);
    tsr_wbuf_bytes(b, s, n);
    tsr_wbuf_u8(b, 0);
}

void tsr_wbuf_str(tsr_wbuf_t *b, const char *s)
{
    if (!s)
        s = "";
    tsr_wbuf_strn(b, s, strlen(s));
}

/* ---- decoder ---------------------------------------------------------------- */

void tsr_rbuf_init(tsr_rbuf_t *r, const void *p, size_t len)
{
    r->p = p;
    r->len = p ? len : 0;
    r->pos = 0;
    r->bad = false;
}

const void *tsr_rbuf_bytes(tsr_rbuf_t *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->p + r->pos;
    r->pos += n;
    return p;
}

void tsr_wbuf_blob(tsr_wbuf_t *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->failed = true; /* no such length on the wire */
        return;
    }
    tsr_wbuf_u32(b, (uint32_t)n);
    tsr_wbuf_bytes(b, p, n);
}

const void *tsr_rbuf_blob(tsr_rbuf_t *r, size_t *n)
{
    *n = tsr_rbuf_u32(r);
    return r->bad ? NULL : tsr_rbuf_bytes(r, *n);
}

static uint64_t get_le(tsr_rbuf_t *r, size_t n)
{
    const uint8_t *p = tsr_rbuf_bytes(r, n);
    uint64_t v = 0;
    for (size_t i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t tsr_rbuf_u8(tsr_rbuf_t *r)
{
    return (uint8_t)get_le(r, 1);
}
uint32_t tsr_rbuf_u32(tsr_rbuf_t *r)
{
    return (uint32_t)get_le(r, 4);
}
uint64_t tsr_rbuf_u64(tsr_rbuf_t *r)
{
    return get_le(r, 8);
}
int32_t tsr_rbuf_i32(tsr_rbuf_t *r)
{
    return (int32_t)(uint32_t)get_le(r, 4);
}

const char *tsr_rbuf_str(tsr_rbuf_t *r)
{
    uint32_t n = tsr_rbuf_u32(r);
    const char *s = tsr_rbuf_bytes(r, (size_t)n + 1);
    if (!s || s[n] != '\0' || memchr(s, '\0', n) != NULL) {
        r->bad = true;
        return "";
    }
    return s;
}

bool tsr_rbuf_done(const tsr_rbuf_t *r)
{
    return !r->bad && r->pos == r->len;
}

/* ---- result tables ------------------------------------------------------------ */

tsr_status_t tsr_proto_encode_result(tsr_wbuf_t *b, const tsr_result_t *res)
{
    size_t ncols = tsr_result_column_count(res), nrows = tsr_result_row_count(res);
    tsr_wbuf_u32(b, (uint32_t)ncols);
    tsr_wbuf_u64(b, nrows);
    for (size_t c = 0; c < ncols; c++) {
        tsr_type_t t = tsr_result_column_type(res, c);
        tsr_wbuf_str(b, tsr_result_column_name(res, c));
        tsr_wbuf_u8(b, (uint8_t)(t == TSR_TYPE_NULL ? TSR_TYPE_VARCHAR : t));
    }
    for (size_t c = 0; c < ncols && !b->failed; c++) {
        tsr_type_t t = tsr_result_column_type(res, c);
        size_t at = b->len;
        for (size_t r = 0; r < nrows; r++) /* reserve the flags, fill below */
            tsr_wbuf_u8(b, 0);
        for (size_t r = 0; r < nrows && !b->failed; r++) {
            bool null = t == TSR_TYPE_NULL || tsr_result_is_null(res, r, c);
            b->data[at + r] = null;
            switch (t) {
            case TSR_TYPE_INT64:
                tsr_wbuf_u64(b, null ? 0 : (uint64_t)tsr_result_int64(res, r, c));
                break;
            case TSR_TYPE_DOUBLE: {
                double d = null ? 0.0 : tsr_result_double(res, r, c);
                uint64_t bits;
                memcpy(&bits, &d, sizeof(bits));
                tsr_wbuf_u64(b, bits);
                break;
            }
            case TSR_TYPE_BOOL:
                tsr_wbuf_u8(b, null ? 0 : tsr_result_bool(res, r, c));
                break;
            default: {
                size_t n = 0;
                const char *s = null ? "" : tsr_result_string(res, r, c, &n);
                tsr_wbuf_strn(b, s, null ? 0 : n);
                break;
            }
            }
        }
    }
    return b->failed ? TSR_ERR_NOMEM : TSR_OK;
}

void tsr_proto_rtab_free(tsr_mem_t *mem, tsr_rtab_t *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (t->nulls)
            tsr_mem_free(mem, t->nulls[c]);
        if (t->values)
            tsr_mem_free(mem, t->values[c]);
    }
    tsr_mem_free(mem, t->names);
    tsr_mem_free(mem, t->types);
    tsr_mem_free(mem, t->nulls);
    tsr_mem_free(mem, t->values);
    memset(t, 0, sizeof(*t));
}

static size_t type_size(tsr_type_t t)
{
    switch (t) {
    case TSR_TYPE_INT64:
        return sizeof(int64_t);
    case TSR_TYPE_DOUBLE:
        return sizeof(double);
    case TSR_TYPE_BOOL:
        return sizeof(bool);
    default:
        return sizeof(const char *);
    }
}

/* Allocates t's per-column arrays for ncols x nrows (names/types included). */
static tsr_status_t rtab_alloc(tsr_mem_t *mem, tsr_rtab_t *t, size_t ncols, size_t nrows)
{
    t->ncols = ncols;
    t->nrows = nrows;
    t->names = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*t->names));
    t->types = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*t->types));
    t->nulls = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*t->nulls));
    t->values = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*t->values));
    if (!t->names || !t->types || !t->nulls || !t->values)
        return TSR_ERR_NOMEM;
    return TSR_OK;
}

tsr_status_t tsr_proto_decode_rtab(tsr_mem_t *mem, const void *msg, size_t len, tsr_rtab_t *out,
                                   tsr_error_t *err)
{
    tsr_rbuf_t r;
    tsr_rtab_t t = {0};
    tsr_status_t rc;
    tsr_rbuf_init(&r, msg, len);
    uint32_t ncols = tsr_rbuf_u32(&r);
    uint64_t nrows = tsr_rbuf_u64(&r);
    /* every row takes at least one flag byte per column: bounds both counts */
    if (r.bad || ncols == 0 || ncols > 100000 || (ncols && nrows > len / ncols)) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed result table from a peer");
        goto fail;
    }
    if ((rc = rtab_alloc(mem, &t, ncols, (size_t)nrows)) != TSR_OK) {
        tsr_error_set(err, rc, "out of memory decoding a result");
        goto fail;
    }
    for (size_t c = 0; c < ncols; c++) {
        t.names[c] = tsr_rbuf_str(&r);
        uint8_t ty = tsr_rbuf_u8(&r);
        if (ty < TSR_TYPE_BOOL || ty > TSR_TYPE_VARCHAR)
            r.bad = true;
        t.types[c] = (tsr_type_t)ty;
    }
    for (size_t c = 0; c < ncols && !r.bad; c++) {
        size_t n = (size_t)nrows;
        const uint8_t *flags = tsr_rbuf_bytes(&r, n);
        t.nulls[c] = tsr_mem_calloc(mem, n ? n : 1, sizeof(bool));
        t.values[c] = tsr_mem_calloc(mem, n ? n : 1, type_size(t.types[c]));
        if (!t.nulls[c] || !t.values[c]) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory decoding a result");
            goto fail;
        }
        for (size_t i = 0; flags && i < n && !r.bad; i++) {
            t.nulls[c][i] = flags[i] != 0;
            switch (t.types[c]) {
            case TSR_TYPE_INT64:
                ((int64_t *)t.values[c])[i] = (int64_t)tsr_rbuf_u64(&r);
                break;
            case TSR_TYPE_DOUBLE: {
                uint64_t bits = tsr_rbuf_u64(&r);
                memcpy((double *)t.values[c] + i, &bits, sizeof(double));
                break;
            }
            case TSR_TYPE_BOOL:
                ((bool *)t.values[c])[i] = tsr_rbuf_u8(&r) != 0;
                break;
            default:
                ((const char **)t.values[c])[i] = tsr_rbuf_str(&r);
                break;
            }
        }
    }
    if (!tsr_rbuf_done(&r)) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed result table from a peer");
        goto fail;
    }
    *out = t;
    return TSR_OK;

fail:
    tsr_proto_rtab_free(mem, &t);
    return rc;
}

tsr_status_t tsr_proto_rtab_append(tsr_mem_t *mem, tsr_rtab_t *dst, const tsr_rtab_t *src,
                                   tsr_error_t *err)
{
    if (dst->ncols == 0) {
        if (rtab_alloc(mem, dst, src->ncols, 0) != TSR_OK)
            goto nomem;
        for (size_t c = 0; c < src->ncols; c++) {
            dst->names[c] = src->names[c];
            dst->types[c] = src->types[c];
        }
    }
    if (dst->ncols != src->ncols)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "partial results of different shapes");
    for (size_t c = 0; c < src->ncols; c++)
        if (dst->types[c] != src->types[c])
            return tsr_error_set(err, TSR_ERR_INTERNAL,
                                 "partial results disagree on the type of column '%s'",
                                 src->names[c]);
    size_t n = dst->nrows + src->nrows;
    for (size_t c = 0; c < src->ncols; c++) {
        size_t sz = type_size(src->types[c]);
        bool *nulls = tsr_mem_realloc(mem, dst->nulls[c], (n ? n : 1) * sizeof(bool));
        if (!nulls)
            goto nomem;
        dst->nulls[c] = nulls;
        void *vals = tsr_mem_realloc(mem, dst->values[c], (n ? n : 1) * sz);
        if (!vals)
            goto nomem;
        dst->values[c] = vals;
        memcpy(nulls + dst->nrows, src->nulls[c], src->nrows * sizeof(bool));
        memcpy((char *)vals + dst->nrows * sz, src->values[c], src->nrows * sz);
    }
    dst->nrows = n;
    return TSR_OK;
nomem:
    return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory merging results");
}

tsr_status_t tsr_proto_rtab_register(tsr_mem_t *mem, tsr_context_t *ctx, const char *name,
                                     const tsr_rtab_t *t, const char *const *names)
{
    tsr_column_data_t *cols = tsr_mem_calloc(mem, t->ncols ? t->ncols : 1, sizeof(*cols));
    if (!cols)
        return TSR_ERR_NOMEM;
    for (size_t c = 0; c < t->ncols; c++) {
        cols[c].name = names ? names[c] : t->names[c];
        cols[c].type = t->types[c];
        cols[c].values = t->values[c];
        cols[c].nulls = t->nulls[c];
    }
    tsr_status_t rc = tsr_table_register_columns(ctx, name, t->ncols, cols, t->nrows);
    tsr_mem_free(mem, cols);
    return rc;
}

/* ---- errors -------------------------------------------------------------------- */

void tsr_proto_encode_error(tsr_wbuf_t *b, const tsr_error_t *e)
{
    tsr_wbuf_str(b, e->message);
    tsr_wbuf_str(b, e->hint);
    tsr_wbuf_str(b, e->file);
    tsr_wbuf_i32(b, e->line);
    tsr_wbuf_i32(b, e->column);
}

void tsr_proto_reply_error(tsr_transport_t *t, tsr_mem_t *mem, tsr_rpc_req_t *req, tsr_status_t rc,
                           const char *msg, const char *hint)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, rc, "%s", msg);
    if (hint)
        tsr_error_hint(&e, "%s", hint);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, mem);
    tsr_proto_encode_error(&b, &e);
    tsr_rpc_reply(t, req, rc, b.failed ? NULL : b.data, b.failed ? 0 : b.len);
    tsr_wbuf_free(&b);
}

void tsr_proto_decode_error(const void *msg, size_t len, tsr_status_t status, tsr_error_t *e)
{
    tsr_rbuf_t r;
    tsr_error_clear(e);
    e->status = status;
    tsr_rbuf_init(&r, msg, len);
    const char *m = tsr_rbuf_str(&r), *h = tsr_rbuf_str(&r), *f = tsr_rbuf_str(&r);
    int line = tsr_rbuf_i32(&r), col = tsr_rbuf_i32(&r);
    if (!tsr_rbuf_done(&r)) {
        snprintf(e->message, sizeof(e->message), "%s", tsr_status_str(status));
        return;
    }
    snprintf(e->message, sizeof(e->message), "%s", m[0] ? m : tsr_status_str(status));
    snprintf(e->hint, sizeof(e->hint), "%s", h);
    snprintf(e->file, sizeof(e->file), "%s", f);
    e->line = line > 0 ? line : 0;
    e->column = col > 0 ? col : 0;
}

void tsr_proto_context_error(const tsr_context_t *ctx, tsr_error_t *e)
{
    tsr_error_info_t info;
    tsr_context_last_error(ctx, &info);
    tsr_error_clear(e);
    e->status = info.status;
    snprintf(e->message, sizeof(e->message), "%s", info.message);
    snprintf(e->hint, sizeof(e->hint), "%s", info.hint);
    snprintf(e->file, sizeof(e->file), "%s", info.file);
    e->line = info.line;
    e->column = info.column;
}

/* ---- lock requests ------------------------------------------------------------- */

void tsr_proto_encode_lock_req(tsr_wbuf_t *b, const tsr_client_lock_req_t *q)
{
    tsr_wbuf_u8(b, q->op);
    tsr_wbuf_str(b, q->name);
    tsr_wbuf_u8(b, q->shared ? 1 : 0);
    tsr_wbuf_u64(b, (uint64_t)q->lease_ms);
    tsr_wbuf_u64(b, (uint64_t)q->timeout_ms);
    tsr_wbuf_u64(b, q->token);
    tsr_wbuf_u32(b, q->home);
}

bool tsr_proto_decode_lock_req(const void *msg, size_t len, tsr_client_lock_req_t *q)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    memset(q, 0, sizeof(*q));
    q->op = tsr_rbuf_u8(&r);
    q->name = tsr_rbuf_str(&r);
    uint8_t shared = tsr_rbuf_u8(&r);
    q->lease_ms = (int64_t)tsr_rbuf_u64(&r);
    q->timeout_ms = (int64_t)tsr_rbuf_u64(&r);
    q->token = tsr_rbuf_u64(&r);
    q->home = tsr_rbuf_u32(&r);
    q->shared = shared != 0;
    return tsr_rbuf_done(&r) && q->op >= TSR_CLIENT_LOCK_ACQUIRE &&
           q->op <= TSR_CLIENT_LOCK_STATUS && shared <= 1;
}

void tsr_proto_encode_lock_status(tsr_wbuf_t *b, const tsr_lock_status_t *st)
{
    tsr_wbuf_u32(b, (uint32_t)st->state);
    tsr_wbuf_u32(b, st->holders);
    tsr_wbuf_u8(b, st->holders_exact ? 1 : 0);
    tsr_wbuf_u32(b, st->waiters);
    tsr_wbuf_u64(b, st->last_token);
    tsr_wbuf_u64(b, (uint64_t)st->lease_ms);
    tsr_wbuf_u32(b, st->home);
    tsr_wbuf_u32(b, st->slot);
    tsr_wbuf_u32(b, st->epoch);
}

bool tsr_proto_decode_lock_status(const void *msg, size_t len, tsr_lock_status_t *st)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    memset(st, 0, sizeof(*st));
    uint32_t state = tsr_rbuf_u32(&r);
    st->holders = tsr_rbuf_u32(&r);
    st->holders_exact = tsr_rbuf_u8(&r) != 0;
    st->waiters = tsr_rbuf_u32(&r);
    st->last_token = tsr_rbuf_u64(&r);
    st->lease_ms = (int64_t)tsr_rbuf_u64(&r);
    st->home = tsr_rbuf_u32(&r);
    st->slot = tsr_rbuf_u32(&r);
    st->epoch = tsr_rbuf_u32(&r);
    if (!tsr_rbuf_done(&r) || state > TSR_LOCK_HELD_EXCLUSIVE)
        return false;
    st->state = (tsr_lock_state_t)state;
    return true;
}

/* ---- the lock view --------------------------------------------------------------- */

void tsr_proto_encode_lock_view(tsr_wbuf_t *b, uint64_t generation,
                                const tsr_lock_view_home_t *homes, size_t n)
{
    tsr_wbuf_u8(b, TSR_LOCK_VIEW_VERSION);
    tsr_wbuf_u64(b, generation);
    tsr_wbuf_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        tsr_wbuf_u32(b, homes[i].worker);
        tsr_wbuf_u32(b, homes[i].node_id);
        tsr_wbuf_str(b, homes[i].host);
        tsr_wbuf_u32(b, homes[i].port);
    }
}

bool tsr_proto_decode_lock_view(tsr_mem_t *mem, const void *msg, size_t len, tsr_lock_view_t *v)
{
    memset(v, 0, sizeof(*v));
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    uint8_t version = tsr_rbuf_u8(&r);
    uint64_t gen = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    /* each home takes at least 4 + 4 + 4 + 2 (a one-byte host) + 4 bytes:
     * a count the message cannot hold is refused before allocating */
    if (r.bad || version != TSR_LOCK_VIEW_VERSION || n == 0 || n > TSR_LOCK_VIEW_MAX ||
        (size_t)n * 18u > len - r.pos)
        return false;
    tsr_lock_view_home_t *homes = tsr_mem_calloc(mem, n, sizeof(*homes));
    if (!homes)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        homes[i].worker = tsr_rbuf_u32(&r);
        homes[i].node_id = tsr_rbuf_u32(&r);
        homes[i].host = tsr_rbuf_str(&r);
        uint32_t port = tsr_rbuf_u32(&r);
        if (r.bad || port == 0 || port > 65535 || homes[i].host[0] == '\0') {
            tsr_mem_free(mem, homes);
            return false;
        }
        homes[i].port = (uint16_t)port;
    }
    if (!tsr_rbuf_done(&r)) {
        tsr_mem_free(mem, homes);
        return false;
    }
    v->generation = gen;
    v->nhomes = n;
    v->homes = homes;
    return true;
}

void tsr_proto_lock_view_free(tsr_mem_t *mem, tsr_lock_view_t *v)
{
    if (!v)
        return;
    tsr_mem_free(mem, v->homes);
    v->homes = NULL;
    v->nhomes = 0;
}

/* ---- progress ------------------------------------------------------------------ */

void tsr_proto_encode_progress(tsr_wbuf_t *b, const tsr_progress_t *p)
{
    tsr_wbuf_u8(b, TSR_PROGRESS_VERSION);
    tsr_wbuf_u64(b, p->job);
    tsr_wbuf_u32(b, p->done);
    tsr_wbuf_u32(b, p->total);
    tsr_wbuf_u64(b, p->rows);
    tsr_wbuf_u64(b, p->elapsed_ms);
}

bool tsr_proto_decode_progress(const void *msg, size_t len, tsr_progress_t *p)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    uint8_t version = tsr_rbuf_u8(&r);
    p->job = tsr_rbuf_u64(&r);
    p->done = tsr_rbuf_u32(&r);
    p->total = tsr_rbuf_u32(&r);
    p->rows = tsr_rbuf_u64(&r);
    p->elapsed_ms = tsr_rbuf_u64(&r);
    if (r.bad || version < 1)
        return false;
    /* version 1 must be exact; later versions append fields we skip */
    return version > 1 || tsr_rbuf_done(&r);
}

/* ---- graph values -------------------------------------------------------------- */

tsr_status_t tsr_proto_encode_data(tsr_wbuf_t *b, const tsr_data_t *d)
{
    tsr_data_kind_t kind = tsr_data_kind(d);
    tsr_wbuf_u8(b, (uint8_t)kind);
    size_t at = b->len;
    tsr_wbuf_u64(b, 0); /* the length, patched below */
    if (kind == TSR_DATA_BYTES) {
        size_t n = 0;
        const void *p = tsr_data_bytes(d, &n);
        tsr_wbuf_bytes(b, p, n);
    } else if (kind == TSR_DATA_TABLE) {
        size_t ncols = tsr_data_column_count(d), nrows = tsr_data_row_count(d);
        tsr_wbuf_u32(b, (uint32_t)ncols);
        tsr_wbuf_u64(b, nrows);
        for (size_t c = 0; c < ncols; c++) {
            tsr_type_t t = tsr_data_column_type(d, c);
            tsr_wbuf_str(b, tsr_data_column_name(d, c));
            tsr_wbuf_u8(b, (uint8_t)(t == TSR_TYPE_NULL ? TSR_TYPE_VARCHAR : t));
        }
        for (size_t c = 0; c < ncols && !b->failed; c++) {
            tsr_type_t t = tsr_data_column_type(d, c);
            size_t flags = b->len;
            for (size_t r = 0; r < nrows; r++)
                tsr_wbuf_u8(b, 0);
            for (size_t r = 0; r < nrows && !b->failed; r++) {
                bool null = t == TSR_TYPE_NULL || tsr_data_is_null(d, r, c);
                b->data[flags + r] = null;
                if (t == TSR_TYPE_INT64) {
                    tsr_wbuf_u64(b, null ? 0 : (uint64_t)tsr_data_int64(d, r, c));
                } else if (t == TSR_TYPE_DOUBLE) {
                    double v = null ? 0.0 : tsr_data_double(d, r, c);
                    uint64_t bits;
                    memcpy(&bits, &v, sizeof(bits));
                    tsr_wbuf_u64(b, bits);
                } else if (t == TSR_TYPE_BOOL) {
                    tsr_wbuf_u8(b, null ? 0 : tsr_data_bool(d, r, c));
                } else {
                    size_t n = 0;
                    const char *s = null ? "" : tsr_data_string(d, r, c, &n);
                    tsr_wbuf_strn(b, s, null ? 0 : n);
                }
            }
        }
    }
    if (b->failed)
        return TSR_ERR_NOMEM;
    uint64_t len = b->len - at - 8;
    for (size_t i = 0; i < 8; i++)
        b->data[at + i] = (uint8_t)(len >> (8 * i));
    return TSR_OK;
}

bool tsr_proto_read_value(tsr_rbuf_t *r, tsr_value_t *v)
{
    v->kind = tsr_rbuf_u8(r);
    uint64_t len = tsr_rbuf_u64(r);
    v->body = NULL;
    v->len = 0;
    if (r->bad || v->kind > TSR_DATA_TABLE || len > r->len - r->pos) {
        r->bad = true;
        return false;
    }
    v->len = (size_t)len;
    v->body = tsr_rbuf_bytes(r, v->len);
    if (v->len && !v->body)
        r->bad = true;
    return !r->bad;
}

void tsr_proto_write_value(tsr_wbuf_t *b, const tsr_value_t *v)
{
    tsr_wbuf_u8(b, v->kind);
    tsr_wbuf_u64(b, v->len);
    tsr_wbuf_bytes(b, v->body, v->len);
}

/* ---- cancel ---------------------------------------------------------------------- */

void tsr_proto_encode_cancel(tsr_wbuf_t *b, uint64_t job)
{
    tsr_wbuf_u64(b, job);
}

bool tsr_proto_decode_cancel(const void *msg, size_t len, uint64_t *job)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    *job = tsr_rbuf_u64(&r);
    return tsr_rbuf_done(&r);
}

/* ---- device constraints ---------------------------------------------------------- */

void tsr_proto_encode_device(tsr_wbuf_t *b, const char *need, const char *prefer)
{
    tsr_wbuf_str(b, need);
    tsr_wbuf_str(b, prefer);
}

bool tsr_proto_read_device(tsr_rbuf_t *r, const char **need, const char **prefer)
{
    *need = tsr_rbuf_str(r);
    *prefer = tsr_rbuf_str(r);
    if (r->bad || !tsr_policy_need_valid(*need) || !tsr_policy_need_valid(*prefer)) {
        r->bad = true;
        *need = *prefer = "";
        return false;
    }
    return true;
}

bool tsr_proto_device_constraint(const char *device, const char **need, const char **prefer)
{
    *need = *prefer = "";
    if (!device || !device[0] || strcmp(device, "auto") == 0) {
        *prefer = "gpu";
        return true;
    }
    if (strcmp(device, "cpu") == 0)
        return true;
    if (!tsr_policy_need_valid(device))
        return false;
    *need = device;
    return true;
}

/* ---- SQL requests ------------------------------------------------------------------ */

void tsr_proto_encode_sql_req(tsr_wbuf_t *b, const char *sql, char delim,
                              const tsr_client_table_t *tables, size_t ntables, const char *need,
                              const char *prefer)
{
    tsr_wbuf_str(b, sql);
    tsr_wbuf_u8(b, (uint8_t)(delim ? delim : ','));
    tsr_wbuf_u32(b, (uint32_t)ntables);
    for (size_t i = 0; i < ntables; i++) {
        tsr_wbuf_str(b, tables[i].name);
        tsr_wbuf_str(b, tables[i].path);
        tsr_wbuf_str(b, tables[i].schema);
    }
    if (need) /* the optional trailer: schedulers before it never see one */
        tsr_proto_encode_device(b, need, prefer);
}

bool tsr_proto_decode_sql_req(const void *msg, size_t len, tsr_sql_req_t *q)
{
    memset(q, 0, sizeof(*q));
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    q->sql = tsr_rbuf_str(&r);
    q->delim = (char)tsr_rbuf_u8(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    if (r.bad || n > TSR_SQL_REQ_MAX_TABLES)
        return false;
    q->ntables = n;
    for (uint32_t i = 0; i < n; i++) {
        q->names[i] = tsr_rbuf_str(&r);
        q->paths[i] = tsr_rbuf_str(&r);
        q->schemas[i] = tsr_rbuf_str(&r);
    }
    q->need = q->prefer = "";
    if (!r.bad && r.pos < r.len)
        tsr_proto_read_device(&r, &q->need, &q->prefer);
    return tsr_rbuf_done(&r);
}
