/*
 * tessera/types.h - the value types of Tessera columns.
 */
#ifndef TESSERA_TYPES_H
#define TESSERA_TYPES_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_type {
    TSR_TYPE_NULL = 0, /* the type of a bare NULL literal; never a column type */
    TSR_TYPE_BOOL,     /* stored as uint8_t 0/1 */
    TSR_TYPE_INT64,    /* int64_t */
    TSR_TYPE_DOUBLE,   /* IEEE 754 double */
    TSR_TYPE_VARCHAR,  /* UTF-8 bytes, dictionary-encoded in memory */
} tsr_type_t;

/* "BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR", "NULL". */
const char *tsr_type_name(tsr_type_t type);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_TYPES_H */
