/*
 * csv.c - the CSV reader's entry points and driver (see csv.h, csv_internal.h).
 *
 * Steps, for an input buffer (a file is read whole first, in parallel):
 *   1. skip a UTF-8 BOM; parse the header row (names: non-empty, unique
 *      case-insensitively); cut trailing blank lines off the body;
 *   2. apply the schema string (fixed types); infer the other columns' types
 *      from the first sample_rows rows (csv_parse.c);
 *   3. split the body into chunks at row boundaries (below);
 *   4. parse the chunks in parallel; the lowest chunk with an error holds the
 *      first error of the input; if values outgrew an inferred type, widen
 *      the column (INT64 -> DOUBLE -> VARCHAR, BOOL -> VARCHAR) and parse
 *      again - rare, and simple beats clever here;
 *   5. build the table (csv_build.c).
 *
 * Chunking. Because every quote of a well-formed input toggles the in-quotes
 * state (csv_parse.c), the parity of the quotes before a position says whether
 * it is inside a quoted field, and the row terminators are exactly the '\n' at
 * even parity. The body is cut into pieces of chunk_bytes; one parallel pass
 * counts per piece its quotes and its '\n' after an even and after an odd
 * number of quotes (so the count is right whatever parity the piece starts
 * with); prefix sums give each piece's parity and rows. Chunk starts are then
 * put just after terminator number k*R, R a multiple of TSR_BATCH_ROWS of
 * about chunk_bytes, each found by a scan inside one piece. So every chunk but
 * the last holds whole batches and the table's batches are all full but the
 * last. An input that breaks the toggling rule fails in the first chunk it
 * affects, whose start is still a true row boundary, so errors stay exact.
 *
 * Errors carry a byte offset; line (counting every '\n', quoted or not) and
 * column (1-based, in UTF-8 characters) are computed once, when reporting.
 */
#include "table/csv.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "table/csv_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define CSV_DEFAULT_SAMPLE 20000
#define CSV_MIN_CHUNK ((size_t)1 << 20)
#define CSV_MAX_CHUNK ((size_t)16 << 20)

/* ---- positions and errors ------------------------------------------------------- */

static void csv_position(const char *base, size_t len, size_t bom, size_t off, int *line_out,
                         int *col_out)
{
    if (off > len)
        off = len;
    size_t lines = 1;
    const char *p = base, *e = base + off, *q;
    while (p < e && (q = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        lines++;
        p = q + 1;
    }
    size_t ls = (size_t)(p - base);
    if (ls < bom)
        ls = bom;
    size_t chars = 0;
    for (size_t i = ls; i < off; i++)
        chars += ((unsigned char)base[i] & 0xC0) != 0x80;
    *line_out = lines > INT_MAX ? INT_MAX : (int)lines;
    *col_out = chars + 1 > INT_MAX ? INT_MAX : (int)(chars + 1);
}

static tsr_status_t csv_report(const tsr_csv_reader_t *rd, size_t bom, const char *name,
                               const tsr_csv_fail_t *f, tsr_error_t *err)
{
    if (f->status == TSR_ERR_NOMEM)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory while reading '%s'", name);
    int line, col;
    csv_position(rd->base, rd->len, bom, f->off, &line, &col);
    return tsr_error_set_at(err, f->status, name, line, col, "%s", f->msg);
}

/* ---- header ---------------------------------------------------------------------- */

typedef struct csv_name_ref {
    const char *name;
    size_t index;
} csv_name_ref_t;

static int csv_name_cmp(const void *pa, const void *pb)
{
    const csv_name_ref_t *a = pa, *b = pb;
    int c = strcasecmp(a->name, b->name);
    if (c)
        return c;
    return (a->index > b->index) - (a->index < b->index);
}

/* Parses the header at offset start; fills rd->names/ncols/body_begin. */
static tsr_status_t csv_header(tsr_csv_reader_t *rd, tsr_csv_chunk_t *tmp, size_t start)
{
    tsr_mem_t *mem = rd->mem;
    const char *end = rd->base + rd->len;
    const char *p = rd->base + start;
    size_t names_cap = 0, offs_cap = 0;
    size_t *offs = NULL;
    csv_name_ref_t *refs = NULL;
    tsr_status_t rc = TSR_OK;
    if (p == end)
        return tsr_csv_fail(&tmp->fail, TSR_ERR_BAD_INPUT, start,
                            "empty input: a header row naming the columns is required");
    for (;;) {
        tsr_csv_field_t f;
        const char *fs = p;
        const char *q = tsr_csv_scan_field(rd, tmp, p, end, &f);
        if (!q) {
            rc = tmp->fail.status;
            goto done;
        }
        size_t off = (size_t)(fs - rd->base);
        if (f.len == 0) {
            rc = tsr_csv_fail(&tmp->fail, TSR_ERR_BAD_INPUT, off,
                              "column %zu has an empty name in the header row", rd->ncols + 1);
            goto done;
        }
        if (memchr(f.s, '\0', f.len)) {
            rc = tsr_csv_fail(&tmp->fail, TSR_ERR_BAD_INPUT, off,
                              "column %zu's name contains a NUL byte", rd->ncols + 1);
            goto done;
        }
        if (tsr_mem_grow(mem, (void **)&rd->names, &names_cap, rd->ncols + 1, sizeof(char *)) ||
            tsr_mem_grow(mem, (void **)&offs, &offs_cap, rd->ncols + 1, sizeof(size_t)) ||
            !(rd->names[rd->ncols] = tsr_mem_strndup(mem, f.s, f.len))) {
            rc = tsr_csv_fail(&tmp->fail, TSR_ERR_NOMEM, off, "out of memory");
            goto done;
        }
        offs[rd->ncols++] = off;
        bool at_delim;
        p = tsr_csv_skip_terminator(rd, q, end, &at_delim);
        if (!at_delim)
            break;
    }
    rd->body_begin = (size_t)(p - rd->base);

    /* duplicates: sort by (name, index); the first repeat in file order is the
     * smallest index that follows an equal name */
    refs = tsr_mem_alloc(mem, rd->ncols * sizeof(*refs));
    if (!refs) {
        rc = tsr_csv_fail(&tmp->fail, TSR_ERR_NOMEM, start, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < rd->ncols; i++) {
        refs[i].name = rd->names[i];
        refs[i].index = i;
    }
    qsort(refs, rd->ncols, sizeof(*refs), csv_name_cmp);
    size_t dup = SIZE_MAX;
    for (size_t i = 1; i < rd->ncols; i++)
        if (strcasecmp(refs[i - 1].name, refs[i].name) == 0 && refs[i].index < dup)
            dup = refs[i].index;
    if (dup != SIZE_MAX)
        rc = tsr_csv_fail(&tmp->fail, TSR_ERR_BAD_INPUT, offs[dup],
                          "duplicate column name '%s' in the header row (names are "
                          "case-insensitive)",
                          rd->names[dup]);
done:
    tsr_mem_free(mem, refs);
    tsr_mem_free(mem, offs);
    return rc;
}

/* ---- schema ---------------------------------------------------------------------- */

static void csv_trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool csv_type_by_name(const char *s, size_t len, tsr_type_t *out)
{
    static const struct {
        const char *name;
        tsr_type_t type;
    } names[] = {
        {"int64", TSR_TYPE_INT64},    {"bigint", TSR_TYPE_INT64},    {"integer", TSR_TYPE_INT64},
        {"int", TSR_TYPE_INT64},      {"double", TSR_TYPE_DOUBLE},   {"float", TSR_TYPE_DOUBLE},
        {"real", TSR_TYPE_DOUBLE},    {"varchar", TSR_TYPE_VARCHAR}, {"text", TSR_TYPE_VARCHAR},
        {"string", TSR_TYPE_VARCHAR}, {"bool", TSR_TYPE_BOOL},       {"boolean", TSR_TYPE_BOOL},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == len && strncasecmp(names[i].name, s, len) == 0) {
            *out = names[i].type;
            return true;
        }
    }
    return false;
}

static long csv_find_col(const tsr_csv_reader_t *rd, const char *s, size_t len)
{
    for (size_t c = 0; c < rd->ncols; c++)
        if (strlen(rd->names[c]) == len && strncasecmp(rd->names[c], s, len) == 0)
            return (long)c;
    return -1;
}

static tsr_status_t csv_schema(tsr_csv_reader_t *rd, const char *schema, const char *file,
                               tsr_error_t *err)
{
    const char *p = schema;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *s = p;
        const char *se = e;
        p = *e ? e + 1 : e;
        csv_trim(&s, &se);
        if (s == se)
            continue; /* tolerate "a:int," and spaces */
        const char *colon = NULL;
        for (const char *q = s; q < se; q++)
            if (*q == ':')
                colon = q;
        if (!colon) {
            tsr_error_set(err, TSR_ERR_INVALID_ARG, "schema entry '%.*s' is not name:type",
                          (int)(se - s > 200 ? 200 : se - s), s);
            tsr_error_hint(err, "write the schema as \"name:type,name:type\"");
            return TSR_ERR_INVALID_ARG;
        }
        const char *ns = s, *ne = colon, *ts = colon + 1, *te = se;
        csv_trim(&ns, &ne);
        csv_trim(&ts, &te);
        int nlen = (int)(ne - ns > 200 ? 200 : ne - ns);
        int tlen = (int)(te - ts > 100 ? 100 : te - ts);
        tsr_type_t type;
        if (!csv_type_by_name(ts, (size_t)(te - ts), &type)) {
            tsr_error_set(err, TSR_ERR_INVALID_ARG,
                          "unknown type '%.*s' for column '%.*s' in the schema", tlen, ts, nlen,
                          ns);
            tsr_error_hint(err, "types are int64 (bigint, integer, int), double (float, real), "
                                "varchar (text, string) and bool (boolean)");
            return TSR_ERR_INVALID_ARG;
        }
        long c = csv_find_col(rd, ns, (size_t)(ne - ns));
        if (c < 0) {
            tsr_error_set(err, TSR_ERR_NOT_FOUND,
                          "the schema names column '%.*s', which is not in the header of '%s'",
                          nlen, ns, file);
            if (ne - ns <= 64) {
                char want[65];
                memcpy(want, ns, (size_t)(ne - ns));
                want[ne - ns] = '\0';
                size_t best = SIZE_MAX, best_c = 0;
                for (size_t k = 0; k < rd->ncols; k++) {
                    size_t d = tsr_edit_distance(want, rd->names[k]);
                    if (d < best) {
                        best = d;
                        best_c = k;
                    }
                }
                if (best <= 2)
                    tsr_error_hint(err, "did you mean '%s'?", rd->names[best_c]);
            }
            return TSR_ERR_NOT_FOUND;
        }
        if (rd->fixed[c]) {
            tsr_error_set(err, TSR_ERR_INVALID_ARG, "column '%s' appears twice in the schema",
                          rd->names[c]);
            return TSR_ERR_INVALID_ARG;
        }
        rd->fixed[c] = true;
        rd->types[c] = type;
    }
    return TSR_OK;
}

/* ---- chunking -------------------------------------------------------------------- */

size_t tsr_csv_chunk_bytes(size_t len, tsr_pool_t *pool, const tsr_csv_tuning_t *tuning)
{
    if (tuning && tuning->chunk_bytes)
        return tuning->chunk_bytes;
    size_t c = len / ((size_t)tsr_pool_size(pool) * 4);
    if (c < CSV_MIN_CHUNK)
        c = CSV_MIN_CHUNK;
    if (c > CSV_MAX_CHUNK)
        c = CSV_MAX_CHUNK;
    return c;
}

/* What the counting pass learns about one piece of the body. */
typedef struct csv_piece {
    uint64_t quotes; /* '"' bytes */
    uint64_t nl[2];  /* '\n' bytes seen after an even / odd number of quotes in the piece */
} csv_piece_t;

typedef struct csv_plan_ctx {
    const char *begin; /* the body */
    size_t len;
    size_t piece; /* bytes per piece (the last may be shorter) */
    csv_piece_t *pieces;
    uint64_t *term_before; /* npieces + 1: row terminators before each piece (prefix) */
    unsigned *parity;      /* npieces: quote parity at each piece's start */
    size_t npieces;
    size_t rows_per_chunk;
    size_t *starts; /* nchunks: body offsets of the chunks (starts[0] = 0) */
} csv_plan_ctx_t;

/* Bit i of the result = xor of bits 0..i of x: the in-quotes state after
 * each byte, given the quote positions. */
static inline uint64_t csv_prefix_xor(uint64_t x)
{
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

/* Masks of '"' and '\n' in the 64 bytes at p. */
static inline void csv_masks64(const char *p, uint64_t *quotes, uint64_t *lines)
{
#ifdef __SSE2__
    const __m128i vq = _mm_set1_epi8('"'), vn = _mm_set1_epi8('\n');
    uint64_t q = 0, n = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        q |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vq)) << (16 * i);
        n |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vn)) << (16 * i);
    }
    *quotes = q;
    *lines = n;
#else
    uint64_t q = 0, n = 0;
    for (int i = 0; i < 64; i++) {
        q |= (uint64_t)(p[i] == '"') << i;
        n |= (uint64_t)(p[i] == '\n') << i;
    }
    *quotes = q;
    *lines = n;
#endif
}

/* Row terminators ('\n' outside quotes) in the 64 bytes at p, given the
 * in-quotes state *par before them; updates *par. */
static inline uint64_t csv_terms64(const char *p, unsigned *par)
{
    uint64_t q, n;
    csv_masks64(p, &q, &n);
    uint64_t inside = csv_prefix_xor(q) ^ (*par ? ~(uint64_t)0 : 0);
    *par = (unsigned)(inside >> 63);
    return n & ~inside;
}

static void csv_count_task(void *arg, size_t k, unsigned worker)
{
    (void)worker;
    csv_plan_ctx_t *px = arg;
    const char *p = px->begin + k * px->piece;
    size_t n = px->len - k * px->piece < px->piece ? px->len - k * px->piece : px->piece;
    uint64_t quotes = 0, lines = 0, even = 0;
    unsigned par = 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t qm, nm;
        csv_masks64(p + i, &qm, &nm);
        lines += (uint64_t)__builtin_popcountll(nm);
        if (qm | par) { /* quotes in play: split the newlines by parity */
            uint64_t inside = csv_prefix_xor(qm) ^ (par ? ~(uint64_t)0 : 0);
            par = (unsigned)(inside >> 63);
            quotes += (uint64_t)__builtin_popcountll(qm);
            even += (uint64_t)__builtin_popcountll(nm & ~inside);
        } else {
            even += (uint64_t)__builtin_popcountll(nm);
        }
    }
    for (; i < n; i++) {
        if (p[i] == '"') {
            quotes++;
            par ^= 1u;
        } else if (p[i] == '\n') {
            lines++;
            even += !par;
        }
    }
    csv_piece_t *pc = &px->pieces[k];
    pc->quotes = quotes;
    pc->nl[0] = even;
    pc->nl[1] = lines - even;
}

/* Finds the start of chunk j >= 1: just after row terminator number
 * j * rows_per_chunk (1-based), a '\n' at even quote parity. */
static void csv_boundary_task(void *arg, size_t j, unsigned worker)
{
    (void)worker;
    csv_plan_ctx_t *px = arg;
    uint64_t want = (uint64_t)(j + 1) * px->rows_per_chunk;
    size_t lo = 0, hi = px->npieces; /* the piece with term_before < want <= next */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (px->term_before[mid] < want)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t need = want - px->term_before[lo];
    const char *p = px->begin + lo * px->piece;
    const char *e = px->begin + px->len;
    unsigned par = px->parity[lo];
    /* whole 64-byte blocks while the wanted terminator is not in them */
    while (e - p >= 64) {
        unsigned par2 = par;
        uint64_t t = csv_terms64(p, &par2);
        uint64_t cnt = (uint64_t)__builtin_popcountll(t);
        if (cnt >= need) {
            while (--need)
                t &= t - 1; /* drop the lowest terminators */
            p += __builtin_ctzll(t) + 1;
            goto found;
        }
        need -= cnt;
        par = par2;
        p += 64;
    }
    for (; p < e; p++) {
        if (*p == '"') {
            par ^= 1u;
        } else if (*p == '\n' && !par && --need == 0) {
            p++;
            break;
        }
    }
found:
    px->starts[j + 1] = (size_t)(p - px->begin);
}

/* Cuts the body into chunks of whole rows, each but the last holding a
 * multiple of align rows and about target bytes. Row terminators are counted
 * per piece in parallel (newlines at even parity, see the top of the file),
 * then each chunk start is found by a scan inside one piece. */
static tsr_status_t csv_plan(const tsr_csv_reader_t *rd, tsr_pool_t *pool, size_t target,
                             size_t align, tsr_csv_chunk_t **chunks_out, size_t *n_out)
{
    tsr_mem_t *mem = rd->mem;
    size_t b0 = rd->body_begin, e0 = rd->body_end;
    tsr_status_t rc = TSR_ERR_NOMEM;
    csv_plan_ctx_t px;
    memset(&px, 0, sizeof(px));
    tsr_csv_chunk_t *chunks = NULL;
    size_t nchunks = 0;
    *chunks_out = NULL;
    *n_out = 0;
    if (b0 >= e0)
        return TSR_OK;
    px.begin = rd->base + b0;
    px.len = e0 - b0;
    px.piece = target;
    px.npieces = px.len / target + (px.len % target != 0);
    if (px.npieces > 1) {
        px.pieces = tsr_mem_alloc(mem, px.npieces * sizeof(*px.pieces));
        px.term_before = tsr_mem_alloc(mem, (px.npieces + 1) * sizeof(*px.term_before));
        px.parity = tsr_mem_alloc(mem, px.npieces * sizeof(*px.parity));
        if (!px.pieces || !px.term_before || !px.parity)
            goto cleanup;
        tsr_pool_run(pool, px.npieces, csv_count_task, &px);
        unsigned par = 0;
        px.term_before[0] = 0;
        for (size_t k = 0; k < px.npieces; k++) {
            px.parity[k] = par;
            px.term_before[k + 1] = px.term_before[k] + px.pieces[k].nl[par];
            par ^= (unsigned)(px.pieces[k].quotes & 1);
        }
        /* the body's last row has no terminator (trailing newlines were cut) */
        uint64_t rows = px.term_before[px.npieces] + 1;
        double row_bytes = (double)px.len / (double)rows;
        size_t per = (size_t)((double)target / row_bytes);
        per = (per + align - 1) / align * align;
        px.rows_per_chunk = per ? per : align;
        nchunks = (size_t)((rows + px.rows_per_chunk - 1) / px.rows_per_chunk);
    } else {
        nchunks = 1;
    }
    px.starts = tsr_mem_alloc(mem, (nchunks + 1) * sizeof(*px.starts));
    chunks = tsr_mem_calloc(mem, nchunks, sizeof(*chunks));
    if (!px.starts || !chunks)
        goto cleanup;
    px.starts[0] = 0;
    if (nchunks > 1)
        tsr_pool_run(pool, nchunks - 1, csv_boundary_task, &px);
    px.starts[nchunks] = px.len;
    for (size_t i = 0; i < nchunks; i++) {
        chunks[i].begin = b0 + px.starts[i];
        chunks[i].end = b0 + px.starts[i + 1];
    }
    *chunks_out = chunks;
    *n_out = nchunks;
    chunks = NULL;
    rc = TSR_OK;
cleanup:
    tsr_mem_free(mem, chunks);
    tsr_mem_free(mem, px.pieces);
    tsr_mem_free(mem, px.term_before);
    tsr_mem_free(mem, px.parity);
    tsr_mem_free(mem, px.starts);
    return rc;
}

typedef struct csv_parse_ctx {
    const tsr_csv_reader_t *rd;
    tsr_csv_chunk_t *chunks;
} csv_parse_ctx_t;

static void csv_parse_task(void *arg, size_t i, unsigned worker)
{
    (void)worker;
    csv_parse_ctx_t *px = arg;
    tsr_csv_parse_chunk(px->rd, &px->chunks[i]); /* the outcome is in chunks[i].fail */
}

/* ---- the driver ------------------------------------------------------------------ */

void tsr_csv_reader_fini(tsr_csv_reader_t *rd)
{
    for (size_t c = 0; rd->names && c < rd->ncols; c++)
        tsr_mem_free(rd->mem, rd->names[c]);
    tsr_mem_free(rd->mem, rd->names);
    tsr_mem_free(rd->mem, rd->types);
    tsr_mem_free(rd->mem, rd->fixed);
    rd->names = NULL;
    rd->types = NULL;
    rd->fixed = NULL;
}

tsr_status_t tsr_csv_prepare(tsr_csv_reader_t *rd, tsr_mem_t *mem, tsr_pool_t *pool,
                             const char *data, size_t len, const char *name,
                             const tsr_csv_options_t *opts, const tsr_csv_tuning_t *tuning,
                             tsr_csv_chunk_t **chunks_out, size_t *nchunks_out, tsr_error_t *err)
{
    tsr_status_t rc;
    tsr_csv_chunk_t tmp;
    memset(rd, 0, sizeof(*rd));
    memset(&tmp, 0, sizeof(tmp));
    *chunks_out = NULL;
    *nchunks_out = 0;

    rd->mem = mem;
    rd->base = data;
    rd->len = len;
    rd->delim = opts && opts->delimiter ? opts->delimiter : ',';
    if (rd->delim == '"' || rd->delim == '\n' || rd->delim == '\r')
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "the CSV delimiter cannot be a quote, CR or LF");
    size_t sample = opts && opts->sample_rows ? opts->sample_rows : CSV_DEFAULT_SAMPLE;
    rd->special[(uint8_t)rd->delim] = 1;
    rd->special['"'] = 1;
    rd->special['\r'] = 1;
    rd->special['\n'] = 1;

    rd->bom = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    rc = csv_header(rd, &tmp, rd->bom);
    if (rc != TSR_OK) {
        csv_report(rd, rd->bom, name, &tmp.fail, err);
        goto cleanup;
    }
    rd->body_end = len;
    while (rd->body_end > rd->body_begin &&
           (data[rd->body_end - 1] == '\n' || data[rd->body_end - 1] == '\r'))
        rd->body_end--;

    rc = TSR_ERR_NOMEM;
    rd->types = tsr_mem_calloc(mem, rd->ncols, sizeof(*rd->types));
    rd->fixed = tsr_mem_calloc(mem, rd->ncols, sizeof(*rd->fixed));
    if (!rd->types || !rd->fixed) {
        tsr_error_set(err, rc, "out of memory while reading '%s'", name);
        goto cleanup;
    }
    if (opts && opts->schema && (rc = csv_schema(rd, opts->schema, name, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_csv_infer(rd, &tmp, sample)) != TSR_OK) {
        tsr_error_set(err, rc, "out of memory while reading '%s'", name);
        goto cleanup;
    }

    size_t align = tuning && tuning->chunk_rows ? tuning->chunk_rows : TSR_BATCH_ROWS;
    rc = csv_plan(rd, pool, tsr_csv_chunk_bytes(rd->body_end - rd->body_begin, pool, tuning), align,
                  chunks_out, nchunks_out);
    if (rc != TSR_OK)
        tsr_error_set(err, rc, "out of memory while reading '%s'", name);

cleanup:
    tsr_csv_chunk_reset(rd, &tmp);
    return rc;
}

tsr_status_t tsr_csv_parse_all(tsr_csv_reader_t *rd, tsr_pool_t *pool, tsr_csv_chunk_t *chunks,
                               size_t nchunks, const char *name, tsr_error_t *err)
{
    for (int pass = 0;; pass++) {
        csv_parse_ctx_t px = {rd, chunks};
        tsr_pool_run(pool, nchunks, csv_parse_task, &px);
        for (size_t i = 0; i < nchunks; i++) /* cancelled: what else failed does not matter */
            if (chunks[i].fail.status == TSR_ERR_CANCELLED)
                return tsr_error_set(err, TSR_ERR_CANCELLED, "cancelled");
        for (size_t i = 0; i < nchunks; i++)
            if (chunks[i].fail.status != TSR_OK)
                return csv_report(rd, rd->bom, name, &chunks[i].fail, err);
        /* only parsed columns can widen: a skipped one never needs more */
        bool widened = false;
        for (size_t c = 0; c < rd->ncols; c++) {
            if (rd->fixed[c])
                continue;
            tsr_type_t t = rd->types[c];
            for (size_t i = 0; i < nchunks; i++)
                t = tsr_csv_join(t, chunks[i].cols[c].need);
            widened |= t != rd->types[c];
            rd->types[c] = t;
        }
        if (!widened)
            return TSR_OK;
        if (pass >= 3) /* cannot happen: a widened type holds every value seen */
            return tsr_error_set(err, TSR_ERR_INTERNAL, "CSV type widening did not settle");
        for (size_t i = 0; i < nchunks; i++)
            tsr_csv_chunk_reset(rd, &chunks[i]);
    }
}

static tsr_status_t csv_read(tsr_mem_t *mem, tsr_pool_t *pool, const char *data, size_t len,
                             const char *name, const char *table_name,
                             const tsr_csv_options_t *opts, const tsr_csv_tuning_t *tuning,
                             tsr_table_t **out, tsr_error_t *err)
{
    tsr_csv_reader_t rd;
    tsr_csv_chunk_t *chunks = NULL;
    size_t nchunks = 0;
    tsr_status_t rc =
        tsr_csv_prepare(&rd, mem, pool, data, len, name, opts, tuning, &chunks, &nchunks, err);
    if (rc == TSR_OK)
        rc = tsr_csv_parse_all(&rd, pool, chunks, nchunks, name, err);
    if (rc == TSR_OK) {
        rc = tsr_csv_build(&rd, pool, chunks, nchunks, table_name, out);
        if (rc == TSR_ERR_NOMEM)
            tsr_error_set(err, rc, "out of memory while reading '%s'", name);
        else if (rc != TSR_OK)
            tsr_error_set(err, rc, "cannot build the table of '%s': %s", name, tsr_status_str(rc));
    }
    if (chunks)
        for (size_t i = 0; i < nchunks; i++)
            tsr_csv_chunk_reset(&rd, &chunks[i]);
    tsr_mem_free(mem, chunks);
    tsr_csv_reader_fini(&rd);
    return rc;
}

tsr_status_t tsr_csv_read_buffer_tuned(tsr_mem_t *mem, tsr_pool_t *pool, const char *data,
                                       size_t len, const char *display_name, const char *table_name,
                                       const tsr_csv_options_t *opts,
                                       const tsr_csv_tuning_t *tuning, tsr_table_t **out,
                                       tsr_error_t *err)
{
    const char *name = display_name ? display_name : "<buffer>";
    if (!data && len)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "no CSV data for '%s'", name);
    if (!data)
        data = "";
    return csv_read(mem, pool, data, len, name, table_name, opts, tuning, out, err);
}

tsr_status_t tsr_csv_read_buffer(tsr_mem_t *mem, tsr_pool_t *pool, const char *data, size_t len,
                                 const char *display_name, const char *table_name,
                                 const tsr_csv_options_t *opts, tsr_table_t **out, tsr_error_t *err)
{
    return tsr_csv_read_buffer_tuned(mem, pool, data, len, display_name, table_name, opts, NULL,
                                     out, err);
}

/* ---- files (the bytes: csv_file.c) ---------------------------------------------- */

tsr_status_t tsr_csv_read_file(tsr_mem_t *mem, tsr_pool_t *pool, const char *path,
                               const char *table_name, const tsr_csv_options_t *opts,
                               tsr_table_t **out, tsr_error_t *err)
{
    char *buf;
    size_t len;
    tsr_status_t rc = tsr_csv_file_bytes(mem, pool, path, &buf, &len, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_csv_read_buffer(mem, pool, buf, len, path, table_name, opts, out, err);
    tsr_mem_free(mem, buf);
    return rc;
}
