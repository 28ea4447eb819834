/*
 * status.c - strings and exit codes for tsr_status_t, generated from the
 * X-macro list in tessera/status.h.
 */
#include "tessera/status.h"

const char *tsr_status_str(tsr_status_t status)
{
    switch (status) {
#define TSR_STATUS_STR_(name, value, text) \
    case name:                             \
        return text;
        TSR_STATUS_LIST(TSR_STATUS_STR_)
#undef TSR_STATUS_STR_
    }
    return "unknown status";
}

const char *tsr_status_name(tsr_status_t status)
{
    switch (status) {
#define TSR_STATUS_NAME_(name, value, text) \
    case name:                              \
        return #name;
        TSR_STATUS_LIST(TSR_STATUS_NAME_)
#undef TSR_STATUS_NAME_
    }
    return "TSR_ERR_UNKNOWN";
}

int tsr_status_exit_code(tsr_status_t status)
{
    int s = (int)status;
    if (s == 0)
        return 0;
    if (s <= -10 && s > -20)
        return 2;
    if (s <= -20 && s > -30)
        return 3;
    if (s <= -30 && s > -40)
        return 4;
    if (s <= -40 && s > -50)
        return 5;
    return 1;
}
