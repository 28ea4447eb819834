/*
 * kv.cl - kv store batch kernels (OpenCL C 1.2 with 64-bit atomics): probe,
 * apply and get over a partition's table used in place (docs/kv.md,
 * "Device batches"; host side engine/kv/part_device.c, CPU semantics
 * engine/kv/part.c).
 *
 * The table is the partition's region itself (CL_MEM_USE_HOST_PTR): a 64 B
 * header, then nslots slots of slot_size bytes:
 *   +0 ver (ulong: bit 0 locked, bit 63 moved, +2 per write), +8 check,
 *   +16 hash, +24 state (uint: 0 empty, 1 full, 2 tombstone), +28 klen,
 *   +32 vlen, +36 pad, +40 key bytes (max_key), then value bytes.
 * Linear probing from hash & mask; an EMPTY slot ends a probe.
 *
 * Batch keys are staged: kbytes holds them back to back, meta[2i] is key i's
 * hash and meta[2i+1] its offset (low 32 bits) and length (high 32).
 *
 * kv_probe  (writers; the host holds the partition mutex, so the table does
 *           not change under it): slot of each key, bit 63 set when a
 *           transaction holds it locked, or ~0 when absent.
 * kv_apply  (writers): one item per distinct key with an effect. It locks
 *           its slot (version odd) by compare-and-swap: an existing key's
 *           slot (no other item has it: keys are distinct), or for a new key
 *           the first EMPTY/TOMBSTONE slot of its probe sequence it wins,
 *           skipping slots other items claimed (they become FULL). Then it
 *           writes the body, the check word for the new version (XXH3 seeded
 *           by it, below) and publishes the version + 2 (a new key's slot
 *           first jumps to the host's floor: past every version the store
 *           gave, as part.c does), so no reader accepts a slot mid-write.
 * kv_get    (readers, lock-free): a slot copy counts only when the version
 *           read before and after it is the same even value; anything else
 *           (odd, moved, changed) answers RETRY and the host reads that key
 *           on the CPU.
 *
 * xxh3_seeded is XXH3_64bits_withSeed of xxHash 0.8 (the scalar code paths
 * for inputs of 17..240 bytes and longer; slot bodies are >= 24 bytes), bit
 * for bit: tsr_kv_slot_check on the host computes the same value.
 */
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable

#define KV_HDR 64UL
#define KV_EMPTY 0u
#define KV_FULL 1u
#define KV_TOMB 2u
#define KV_LOCKED 1UL
#define KV_MOVED 0x8000000000000000UL
#define KV_ABSENT 0xffffffffffffffffUL
#define KV_DEL_BIT 0x8000000000000000UL

#define GET_OK 0UL
#define GET_MISS 1UL
#define GET_RETRY 2UL

/* ---- XXH3 (64-bit, seeded) ----------------------------------------------------------- */

#define P32_1 0x9E3779B1UL
#define P32_2 0x85EBCA77UL
#define P32_3 0xC2B2AE3DUL
#define P64_1 0x9E3779B185EBCA87UL
#define P64_2 0xC2B2AE3D27D4EB4FUL
#define P64_3 0x165667B19E3779F9UL
#define P64_4 0x85EBCA77C2B2AE63UL
#define P64_5 0x27D4EB2F165667C5UL

__constant uchar KSECRET[192] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c,
    0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb,
    0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e,
    0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6,
    0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb,
    0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97,
    0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7,
    0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31,
    0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83,
    0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26,
    0x29, 0xd4, 0x68, 0x9e, 0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc,
    0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f,
    0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

inline ulong rd64g(__global const uchar *p)
{
    return as_ulong(vload8(0, p));
}
inline ulong rd64c(__constant const uchar *p)
{
    return as_ulong(vload8(0, p));
}
inline ulong rd64s(const uchar *p)
{
    return as_ulong(vload8(0, p));
}

inline ulong fold64(ulong a, ulong b)
{
    return (a * b) ^ mul_hi(a, b);
}

inline ulong avalanche3(ulong h)
{
    h ^= h >> 37;
    h *= 0x165667919E3779F9UL;
    return h ^ (h >> 32);
}

inline ulong mix16(__global const uchar *in, __constant const uchar *sec, ulong seed)
{
    return fold64(rd64g(in) ^ (rd64c(sec) + seed), rd64g(in + 8) ^ (rd64c(sec + 8) - seed));
}

inline void acc512(ulong *acc, __global const uchar *in, const uchar *sec)
{
    for (int i = 0; i < 8; i++) {
        ulong dv = rd64g(in + 8 * i);
        ulong dk = dv ^ rd64s(sec + 8 * i);
        acc[i ^ 1] += dv;
        acc[i] += (dk & 0xFFFFFFFFUL) * (dk >> 32);
    }
}

inline void scramble(ulong *acc, const uchar *sec)
{
    for (int i = 0; i < 8; i++) {
        ulong a = acc[i];
        a ^= a >> 47;
        a ^= rd64s(sec + 8 * i);
        acc[i] = a * P32_1;
    }
}

/* XXH3_64bits_withSeed(p, len, seed) for len > 16. */
ulong xxh3_seeded(__global const uchar *p, ulong len, ulong seed)
{
    if (len <= 128) {
        ulong acc = len * P64_1;
        if (len > 32) {
            if (len > 64) {
                if (len > 96) {
                    acc += mix16(p + 48, KSECRET + 96, seed);
                    acc += mix16(p + len - 64, KSECRET + 112, seed);
                }
                acc += mix16(p + 32, KSECRET + 64, seed);
                acc += mix16(p + len - 48, KSECRET + 80, seed);
            }
            acc += mix16(p + 16, KSECRET + 32, seed);
            acc += mix16(p + len - 32, KSECRET + 48, seed);
        }
        acc += mix16(p, KSECRET, seed);
        acc += mix16(p + len - 16, KSECRET + 16, seed);
        return avalanche3(acc);
    }
    if (len <= 240) {
        ulong acc = len * P64_1;
        int rounds = (int)len / 16;
        for (int i = 0; i < 8; i++)
            acc += mix16(p + 16 * i, KSECRET + 16 * i, seed);
        acc = avalanche3(acc);
        for (int i = 8; i < rounds; i++)
            acc += mix16(p + 16 * i, KSECRET + 16 * (i - 8) + 3, seed);
        acc += mix16(p + len - 16, KSECRET + 136 - 17, seed);
        return avalanche3(acc);
    }
    /* long: the secret derived from the seed, 64-byte stripes in blocks of 16 */
    uchar sec[192];
    for (int i = 0; i < 12; i++) {
        vstore8(as_uchar8(rd64c(KSECRET + 16 * i) + seed), 0, sec + 16 * i);
        vstore8(as_uchar8(rd64c(KSECRET + 16 * i + 8) - seed), 0, sec + 16 * i + 8);
    }
    ulong acc[8] = {P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1};
    const ulong per_block = (192 - 64) / 8, block_len = 64 * per_block;
    ulong nb = (len - 1) / block_len;
    for (ulong b = 0; b < nb; b++) {
        for (ulong s = 0; s < per_block; s++)
            acc512(acc, p + b * block_len + s * 64, sec + s * 8);
        scramble(acc, sec + 192 - 64);
    }
    ulong stripes = ((len - 1) - block_len * nb) / 64;
    for (ulong s = 0; s < stripes; s++)
        acc512(acc, p + nb * block_len + s * 64, sec + s * 8);
    acc512(acc, p + len - 64, sec + 192 - 64 - 7);
    ulong r = len * P64_1;
    for (int i = 0; i < 4; i++)
        r += fold64(acc[2 * i] ^ rd64s(sec + 11 + 16 * i), acc[2 * i + 1] ^ rd64s(sec + 11 + 16 * i + 8));
    return avalanche3(r);
}

/* ---- slots -------------------------------------------------------------------------------- */

inline __global uchar *slot_at(__global uchar *tab, ulong i, uint slot_size)
{
    return tab + KV_HDR + i * (ulong)slot_size;
}

inline ulong ver_load(__global uchar *s)
{
    return *(volatile __global ulong *)s;
}

inline int key_eq(__global const uchar *a, __global const uchar *b, uint n)
{
    for (uint i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

inline void probe_one(__global uchar *tab, ulong mask, uint slot_size,
                      __global const ulong *meta, __global const uchar *kbytes,
                      __global ulong *out, size_t i)
{
    ulong h = meta[2 * i];
    uint koff = (uint)meta[2 * i + 1], klen = (uint)(meta[2 * i + 1] >> 32);
    ulong pos = h & mask, res = KV_ABSENT;
    for (ulong k = 0; k <= mask; k++, pos = (pos + 1) & mask) {
        __global uchar *s = slot_at(tab, pos, slot_size);
        uint st = *(__global uint *)(s + 24);
        if (st == KV_EMPTY)
            break;
        if (st == KV_FULL && *(__global ulong *)(s + 16) == h &&
            *(__global uint *)(s + 28) == klen && key_eq(s + 40, kbytes + koff, klen)) {
            res = pos | ((ver_load(s) & KV_LOCKED) << 63);
            break;
        }
    }
    out[i] = res;
}

/* item j: a[4j] hash, a[4j+1] key offset | klen << 32, a[4j+2] value offset
 * | vlen << 32 | KV_DEL_BIT for a delete, a[4j+3] the key's slot or ~0 to
 * claim one. out[j] = slot << 2 | the state it had, or ~0 when no free slot
 * was found (cannot happen below the load limit). floor: the version a new
 * key's slot starts past (0: none). */
inline void apply_one(__global uchar *tab, ulong mask, uint slot_size, uint max_key,
                      __global const ulong *a, __global const uchar *kbytes,
                      __global const uchar *vbytes, __global ulong *out, ulong floor, size_t j)
{
    ulong h = a[4 * j];
    uint koff = (uint)a[4 * j + 1], klen = (uint)(a[4 * j + 1] >> 32);
    ulong vw = a[4 * j + 2];
    int del = (vw & KV_DEL_BIT) != 0;
    uint voff = (uint)vw, vlen = (uint)((vw & ~KV_DEL_BIT) >> 32);
    ulong pos = a[4 * j + 3];
    uint prev = KV_FULL;
    int is_new = pos == KV_ABSENT;
    ulong v;
    __global uchar *s;
    if (!is_new) {
        /* the key's own slot: no other item has it (keys are distinct) and
         * no transaction can lock it (the host holds the partition mutex) */
        s = slot_at(tab, pos, slot_size);
        v = ver_load(s);
        for (;;) {
            ulong seen = atom_cmpxchg((volatile __global ulong *)s, v, v | KV_LOCKED);
            if (seen == v)
                break;
            v = seen;
        }
    } else {
        pos = h & mask;
        ulong k = 0;
        for (; k <= mask; k++, pos = (pos + 1) & mask) {
            s = slot_at(tab, pos, slot_size);
            if (*(volatile __global uint *)(s + 24) == KV_FULL)
                continue;
            v = ver_load(s);
            if ((v & KV_LOCKED) == 0 &&
                atom_cmpxchg((volatile __global ulong *)s, v, v | KV_LOCKED) == v) {
                /* won; but another item may have claimed, filled and
                 * published it since the state was read: then give it back */
                prev = *(volatile __global uint *)(s + 24);
                if (prev != KV_FULL)
                    break;
                atom_xchg((volatile __global ulong *)s, v);
            }
        }
        if (k > mask) {
            out[j] = KV_ABSENT;
            return;
        }
    }
    s = slot_at(tab, pos, slot_size);
    mem_fence(CLK_GLOBAL_MEM_FENCE); /* the lock before any byte of the body */
    *(__global ulong *)(s + 16) = del ? 0UL : h;
    *(__global uint *)(s + 24) = del ? KV_TOMB : KV_FULL;
    *(__global uint *)(s + 28) = del ? 0u : klen;
    *(__global uint *)(s + 32) = del ? 0u : vlen;
    *(__global uint *)(s + 36) = 0u;
    if (!del) {
        for (uint b = 0; b < klen; b++)
            s[40 + b] = kbytes[koff + b];
        __global uchar *d = s + 40 + max_key;
        for (uint b = 0; b < vlen; b++)
            d[b] = vbytes[voff + b];
    }
    ulong nv = v & ~(KV_LOCKED | KV_MOVED);
    if (is_new && !del && floor > nv)
        nv = floor;
    nv += 2;
    *(__global ulong *)(s + 8) = xxh3_seeded(s + 16, 24UL + max_key + (del ? 0u : vlen), nv);
    mem_fence(CLK_GLOBAL_MEM_FENCE); /* the body and check before the version */
    atom_xchg((volatile __global ulong *)s, nv);
    out[j] = pos << 2 | prev;
}

/* Key i's value into vals + i * stride (at most stride bytes), its length
 * into vlens[i] and GET_OK / GET_MISS / GET_RETRY into st[i]. */
inline void get_one(__global uchar *tab, ulong mask, uint slot_size, uint max_key, uint max_val,
                    __global const ulong *meta, __global const uchar *kbytes,
                    __global uchar *vals, ulong stride, __global ulong *vlens,
                    __global ulong *st, size_t i)
{
    ulong h = meta[2 * i];
    uint koff = (uint)meta[2 * i + 1], klen = (uint)(meta[2 * i + 1] >> 32);
    ulong pos = h & mask, res = GET_MISS, vl = 0;
    for (ulong k = 0; k <= mask; k++, pos = (pos + 1) & mask) {
        __global uchar *s = slot_at(tab, pos, slot_size);
        ulong v1 = ver_load(s);
        if (v1 & (KV_LOCKED | KV_MOVED)) {
            res = GET_RETRY;
            break;
        }
        uint state = *(volatile __global uint *)(s + 24);
        int hit = 0, done = 0;
        if (state == KV_EMPTY) {
            done = 1;
        } else if (state == KV_FULL && *(volatile __global ulong *)(s + 16) == h &&
                   *(volatile __global uint *)(s + 28) == klen &&
                   key_eq(s + 40, kbytes + koff, klen)) {
            uint len = *(volatile __global uint *)(s + 32);
            if (len <= max_val) {
                ulong c = len < stride ? len : stride;
                __global const uchar *src = s + 40 + max_key;
                __global uchar *dst = vals + i * stride;
                for (ulong b = 0; b < c; b++)
                    dst[b] = ((volatile __global const uchar *)src)[b];
                vl = len;
                hit = 1;
            }
        }
        read_mem_fence(CLK_GLOBAL_MEM_FENCE);
        if (ver_load(s) != v1) {
            res = GET_RETRY; /* the slot changed while it was read */
            break;
        }
        if (hit) {
            res = GET_OK;
            break;
        }
        if (done)
            break;
    }
    vlens[i] = res == GET_OK ? vl : 0;
    st[i] = res;
}

/* ---- the kernels ---------------------------------------------------------------------------
 * A work-item takes `per` consecutive keys (items) and first loads the
 * version word of each one's first slot: independent loads that a CPU device
 * overlaps (PoCL runs a work-group's items one after the other, so a lone
 * probe would wait for its cache miss alone); the host passes per = 1 for
 * GPUs, which hide the latency with other work-items. */

__kernel void kv_probe(__global uchar *tab, ulong mask, uint slot_size, ulong n,
                       __global const ulong *meta, __global const uchar *kbytes,
                       __global ulong *out, uint per)
{
    size_t b = get_global_id(0) * per, e = min((ulong)(b + per), n);
    for (size_t i = b; i < e; i++)
        (void)ver_load(slot_at(tab, meta[2 * i] & mask, slot_size));
    for (size_t i = b; i < e; i++)
        probe_one(tab, mask, slot_size, meta, kbytes, out, i);
}

__kernel void kv_apply(__global uchar *tab, ulong mask, uint slot_size, uint max_key, ulong m,
                       __global const ulong *a, __global const uchar *kbytes,
                       __global const uchar *vbytes, __global ulong *out, ulong floor, uint per)
{
    size_t b = get_global_id(0) * per, e = min((ulong)(b + per), m);
    for (size_t j = b; j < e; j++)
        (void)ver_load(slot_at(tab, a[4 * j + 3] == KV_ABSENT ? a[4 * j] & mask : a[4 * j + 3],
                               slot_size));
    for (size_t j = b; j < e; j++)
        apply_one(tab, mask, slot_size, max_key, a, kbytes, vbytes, out, floor, j);
}

__kernel void kv_get(__global uchar *tab, ulong mask, uint slot_size, uint max_key, uint max_val,
                     ulong n, __global const ulong *meta, __global const uchar *kbytes,
                     __global uchar *vals, ulong stride, __global ulong *vlens,
                     __global ulong *st, uint per)
{
    size_t b = get_global_id(0) * per, e = min((ulong)(b + per), n);
    for (size_t i = b; i < e; i++)
        (void)ver_load(slot_at(tab, meta[2 * i] & mask, slot_size));
    for (size_t i = b; i < e; i++)
        get_one(tab, mask, slot_size, max_key, max_val, meta, kbytes, vals, stride, vlens, st, i);
}
