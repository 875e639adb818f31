/* SPDX-License-Identifier: MIT */
/* Parking the I/O thread and kicking it awake (park.c has the handshake's argument). */
#ifndef SALVO_PARK_H
#define SALVO_PARK_H

#include "engine.h"

/* io_uring user data: which operation a completion is for. */
enum { SV_UD_SEND = 1, SV_UD_RECV, SV_UD_WAKE };

/* I/O thread: arm the read of wake_fd that ends a sleep (once; reaping SV_UD_WAKE clears
 * wake_inflight). */
void sv_park_arm_wake(salvo_client *c);
/* I/O thread: about to sleep; then look for work once more, and sleep only if none. */
/* c->parked: awake (0); asleep, to be kicked by any work (SV_PARKED); asleep until a
 * deadline at most SV_PARK_SOON_NS away, to be kicked by work other than settles. */
enum { SV_PARKED = 1, SV_PARKED_SOON = 2 };
#define SV_PARK_SOON_NS (2000u * 1000u)

void sv_park_begin(salvo_client *c, bool soon);
/* After a send of ring bytes, parked: look at the rings for SV_LINGER_NS; true if a
 * producer's message turned up (the thread must not sleep). */
#define SV_LINGER_NS (5u * 1000u)
bool sv_park_linger(salvo_client *c);
/* I/O thread: awake (or not sleeping after all). */
void sv_park_end(salvo_client *c);

/* Any thread, after making work visible (stored before the call): wake the I/O thread if
 * it is parked; a fence and a load when it is not. */
void sv_client_kick(salvo_client *c);
void sv_settle_kick(salvo_client *c);
/* I/O thread: about to sleep until a send completes, with a read held; then look at the
 * producers once more (sv_recv_hold_cut). And awake again. */
void sv_hold_sleep_begin(salvo_client *c);
void sv_hold_sleep_end(salvo_client *c);
/* A producer that starts to wait for a confirm or for ring space, after storing what it
 * waits for: sv_client_kick, and wake a thread asleep with a read held. */
void sv_waiter_kick(salvo_client *c);
/* A producer, after its commit: kick only if the ring was idle before it or the thread
 * says it is parked. */
void sv_kick_after_commit(salvo_client *c, bool ring_was_idle);
/* Any thread: wake the I/O thread whether parked or not (rare events). */
void sv_client_wake(salvo_client *c);

#endif
