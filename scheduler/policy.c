/*
 * policy.c - per-worker ready queues, bounded slots, work stealing and the
 * built-in placement policies (see policy.h for the model and invariants).
 *
 * Queues are intrusive doubly linked lists (the item lives in the job's task
 * record), so queueing never allocates and a cancelled job takes its items
 * out in O(1) each. A worker serves its own queue from the head (the order
 * tasks became ready); a thief takes from the tail of the victim's queue,
 * the task the owner would reach last.
 *
 * Policies:
 *   locality      a task goes to its home worker (where its inputs are) when
 *                 that worker may run it; otherwise, and for tasks without a
 *                 home, to the eligible worker with the least work (in flight
 *                 + queued), ties in turn. Idle workers steal from the
 *                 longest queue.
 *   least-loaded  ignores homes: always the least loaded eligible worker
 *                 (the scheduler's rule before queues existed); steals like
 *                 locality.
 * Both keep `avoid` (the worker a lost task was on) out when another
 * eligible worker is ready, and honour a task's `prefer` (a device
 * preference: "auto" SQL jobs, graph kinds with an optional GPU kernel) by
 * choosing among the eligible workers that satisfy it while one is ready;
 * locality's home yields to the preference (a GPU worker beats the page
 * cache for a task that asked for a GPU). Stealing ignores preferences.
 */
#include "policy.h"

#include <stdio.h>
#include <string.h>

bool tsr_policy_device_ok(const char *need, const char *device)
{
    if (!need || !need[0])
        return true;
    if (!device)
        device = "cpu";
    if (strcmp(need, "gpu") == 0)
        return strncmp(device, "cpu", 3) != 0;
    if (strncmp(device, need, strlen(need)) == 0)
        return true;
    /* a worker started with a bare backend ("opencl") has its first device:
     * it satisfies "opencl0" */
    size_t dl = strlen(device);
    return dl > 0 && (device[dl - 1] < '0' || device[dl - 1] > '9') &&
           strncmp(need, device, dl) == 0 && strcmp(need + dl, "0") == 0;
}

bool tsr_policy_need_valid(const char *s)
{
    if (!s || !s[0] || strcmp(s, "gpu") == 0)
        return true;
    size_t n = 0;
    if (strncmp(s, "cuda", 4) == 0)
        n = 4;
    else if (strncmp(s, "opencl", 6) == 0)
        n = 6;
    else
        return false;
    size_t digits = strspn(s + n, "0123456789");
    return s[n + digits] == '\0' && digits <= 4;
}

bool tsr_placer_can_run(const tsr_placer_t *pl, size_t w, const tsr_pq_item_t *it)
{
    return w < pl->nworkers && pl->w[w].ready && tsr_policy_device_ok(it->need, pl->w[w].device);
}

bool tsr_placer_any_ready(const tsr_placer_t *pl, const char *need)
{
    for (size_t i = 0; i < pl->nworkers; i++)
        if (pl->w[i].ready && tsr_policy_device_ok(need, pl->w[i].device))
            return true;
    return false;
}

void tsr_placer_ready_devices(const tsr_placer_t *pl, char *buf, size_t size)
{
    if (!size)
        return;
    buf[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < pl->nworkers; i++) {
        if (!pl->w[i].ready)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = pl->w[k].ready && strcmp(pl->w[k].device, pl->w[i].device) == 0;
        if (seen)
            continue;
        int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", pl->w[i].device);
        if (n < 0 || (size_t)n >= size - len) {
            buf[len] = '\0'; /* cut at a whole name */
            break;
        }
        len += (size_t)n;
    }
    if (!len)
        snprintf(buf, size, "none");
}

/* May worker i take it, preference included? (pref: a preferred worker is
 * ready for it.) */
static bool fits(const tsr_placer_t *pl, size_t i, const tsr_pq_item_t *it, bool pref)
{
    return tsr_placer_can_run(pl, i, it) &&
           (!pref || tsr_policy_device_ok(it->prefer, pl->w[i].device));
}

/* Is a ready worker that may run it also of its preferred device? */
static bool preferred_ready(const tsr_placer_t *pl, const tsr_pq_item_t *it)
{
    if (!it->prefer || !it->prefer[0])
        return false;
    for (size_t i = 0; i < pl->nworkers; i++)
        if (fits(pl, i, it, true))
            return true;
    return false;
}

/* The eligible worker with the least work (among the preferred ones while
 * one is ready), avoiding it->avoid when another is eligible; ties in turn
 * from the round-robin cursor. */
static int least_loaded(tsr_placer_t *pl, const tsr_pq_item_t *it)
{
    int best = -1, fallback = -1;
    size_t bestload = 0;
    size_t n = pl->nworkers;
    bool pref = preferred_ready(pl, it);
    for (size_t k = 0; k < n; k++) {
        size_t i = (pl->rr + k) % n;
        if (!fits(pl, i, it, pref))
            continue;
        if ((int)i == it->avoid) {
            fallback = (int)i;
            continue;
        }
        size_t load = pl->w[i].inflight + pl->w[i].qlen;
        if (best < 0 || load < bestload) {
            best = (int)i;
            bestload = load;
        }
    }
    pl->rr++;
    return best >= 0 ? best : fallback;
}

static int place_locality(tsr_placer_t *pl, const tsr_pq_item_t *it)
{
    if (it->home >= 0 && it->home != it->avoid &&
        fits(pl, (size_t)it->home, it, preferred_ready(pl, it)))
        return it->home;
    return least_loaded(pl, it);
}

static int place_least(tsr_placer_t *pl, const tsr_pq_item_t *it)
{
    return least_loaded(pl, it);
}

/* The longest other queue holding an item worker w may run. */
static int steal_longest(tsr_placer_t *pl, size_t w)
{
    int best = -1;
    for (size_t i = 0; i < pl->nworkers; i++) {
        const tsr_pworker_t *v = &pl->w[i];
        if (i == w || v->qlen == 0 || (best >= 0 && v->qlen <= pl->w[best].qlen))
            continue;
        for (const tsr_pq_item_t *it = v->tail; it; it = it->prev)
            if (tsr_placer_can_run(pl, w, it)) {
                best = (int)i;
                break;
            }
    }
    return best;
}

static const tsr_policy_ops_t POLICIES[] = {
    {.name = "locality", .place = place_locality, .steal = steal_longest},
    {.name = "least-loaded", .place = place_least, .steal = steal_longest},
};

const tsr_policy_ops_t *tsr_policy_find(const char *name)
{
    if (!name || !name[0])
        return &POLICIES[0];
    for (size_t i = 0; i < sizeof(POLICIES) / sizeof(POLICIES[0]); i++)
        if (strcmp(POLICIES[i].name, name) == 0)
            return &POLICIES[i];
    return NULL;
}

const char *tsr_policy_names(void)
{
    return "locality, least-loaded";
}

void tsr_placer_init(tsr_placer_t *pl, const tsr_policy_ops_t *ops, unsigned slots)
{
    memset(pl, 0, sizeof(*pl));
    pl->ops = ops ? ops : &POLICIES[0];
    pl->slots = slots ? slots : TSR_PLACER_DEFAULT_SLOTS;
}

bool tsr_placer_add_worker(tsr_placer_t *pl, size_t idx, const char *device)
{
    if (idx >= TSR_PLACER_MAX_WORKERS)
        return false;
    while (pl->nworkers <= idx)
        memset(&pl->w[pl->nworkers++], 0, sizeof(tsr_pworker_t));
    tsr_pworker_t *w = &pl->w[idx];
    memset(w, 0, sizeof(*w));
    w->ready = true;
    snprintf(w->device, sizeof(w->device), "%s", device ? device : "cpu");
    return true;
}

static void unlink_item(tsr_placer_t *pl, tsr_pq_item_t *it)
{
    tsr_pworker_t *w = &pl->w[it->queue];
    if (it->prev)
        it->prev->next = it->next;
    else
        w->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        w->tail = it->prev;
    it->prev = it->next = NULL;
    it->queue = -1;
    w->qlen--;
}

static void append(tsr_placer_t *pl, size_t wi, tsr_pq_item_t *it)
{
    tsr_pworker_t *w = &pl->w[wi];
    it->queue = (int)wi;
    it->next = NULL;
    it->prev = w->tail;
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->qlen++;
}

bool tsr_placer_push(tsr_placer_t *pl, tsr_pq_item_t *it)
{
    if (it->queue >= 0)
        unlink_item(pl, it);
    int wi = pl->ops->place(pl, it);
    if (wi < 0 || !tsr_placer_can_run(pl, (size_t)wi, it))
        return false;
    append(pl, (size_t)wi, it);
    return true;
}

void tsr_placer_remove(tsr_placer_t *pl, tsr_pq_item_t *it)
{
    if (it->queue >= 0)
        unlink_item(pl, it);
}

void tsr_placer_worker_dead(tsr_placer_t *pl, size_t idx)
{
    if (idx >= pl->nworkers || !pl->w[idx].ready)
        return;
    tsr_pworker_t *w = &pl->w[idx];
    w->ready = false;
    /* place the orphans again in their order; a hook may push or remove
     * other items, so take one at a time from the head */
    while (w->head) {
        tsr_pq_item_t *it = w->head;
        unlink_item(pl, it);
        if (!tsr_placer_push(pl, it) && it->unplaceable)
            it->unplaceable(it);
    }
}

void tsr_placer_done(tsr_placer_t *pl, size_t w)
{
    if (w < pl->nworkers && pl->w[w].inflight > 0)
        pl->w[w].inflight--;
}

/* The next item worker wi runs: its own queue's head, else the last item it
 * may run in the queue the policy names. NULL: nothing for it. */
static tsr_pq_item_t *take(tsr_placer_t *pl, size_t wi)
{
    tsr_pworker_t *w = &pl->w[wi];
    if (w->head) {
        tsr_pq_item_t *it = w->head;
        unlink_item(pl, it);
        return it;
    }
    int v = pl->ops->steal(pl, wi);
    if (v < 0 || (size_t)v >= pl->nworkers || (size_t)v == wi)
        return NULL;
    for (tsr_pq_item_t *it = pl->w[v].tail; it; it = it->prev)
        if (tsr_placer_can_run(pl, wi, it)) {
            unlink_item(pl, it);
            w->stolen++;
            return it;
        }
    return NULL;
}

void tsr_placer_pump(tsr_placer_t *pl)
{
    if (pl->pumping) {
        pl->again = true;
        return;
    }
    pl->pumping = 1;
    do {
        pl->again = false;
        size_t n = pl->nworkers;
        bool sent = true;
        /* one task per worker per round, so a steal-happy first worker does
         * not empty every queue before the others get their turn */
        while (sent) {
            sent = false;
            for (size_t k = 0; k < n; k++) {
                size_t wi = (pl->rr + k) % n;
                tsr_pworker_t *w = &pl->w[wi];
                if (!w->ready || w->inflight >= pl->slots)
                    continue;
                tsr_pq_item_t *it = take(pl, wi);
                if (!it)
                    continue;
                w->inflight++;
                if (!it->send(it, (int)wi))
                    tsr_placer_done(pl, wi);
                sent = true; /* an item left the queues either way: progress */
            }
        }
    } while (pl->again);
    pl->pumping = 0;
}

size_t tsr_placer_queued(const tsr_placer_t *pl)
{
    size_t n = 0;
    for (size_t i = 0; i < pl->nworkers; i++)
        n += pl->w[i].qlen;
    return n;
}
