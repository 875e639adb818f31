/* SPDX-License-Identifier: MIT */
/* Holding reads while the consumers' queues are full (read_hold.c has the handshake). */
#ifndef SALVO_READ_HOLD_H
#define SALVO_READ_HOLD_H

#include "engine.h"

/* I/O thread: a message of cost bytes is handed to a consumer. Returns the new total. */
uint64_t sv_hold_charge(salvo_client *c, uint64_t cost);
/* Any thread: the application took (or gave back) a message of cost bytes. */
void sv_hold_taken(salvo_client *c, uint64_t cost);
/* I/O thread: the queued messages exceed the bound: stop decoding. */
bool sv_hold_over_bound(salvo_client *c);
/* I/O thread: whether to hold reads (and decoding), from the moment the queued messages
 * pass the bound until the application has taken them down to half of it. */
bool sv_hold_reads(salvo_client *c);
/* I/O thread: reads are being held (the broker's silence is ours, not its). */
bool sv_hold_active(salvo_client *c);

#endif
