/*
 * tessera/tessera.h - the whole public C API of Tessera.
 */
#ifndef TESSERA_TESSERA_H
#define TESSERA_TESSERA_H

#include "tessera/context.h"
#include "tessera/device.h"
#include "tessera/kv.h"
#include "tessera/lock.h"
#include "tessera/graph.h"
#include "tessera/query.h"
#include "tessera/status.h"
#include "tessera/table.h"
#include "tessera/types.h"

#endif /* TESSERA_TESSERA_H */
