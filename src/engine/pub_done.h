/* SPDX-License-Identifier: MIT */
/* A confirm-mode publisher waiting for outcomes (pub_done.c has the handshake). */
#ifndef SALVO_PUB_DONE_H
#define SALVO_PUB_DONE_H

#include "engine.h"

/* I/O thread: every message up to done has its outcome in its slot; wake the producer if
 * it sleeps for no more than that. */
void sv_done_publish(struct salvo_publisher *p, uint64_t done);
/* I/O thread, as it exits: let go of the publisher and wake its producer. */
void sv_done_orphan(struct salvo_publisher *p);

/* Producer: done as published (acquire: the outcomes up to it are visible). */
uint64_t sv_done_load(struct salvo_publisher *p);
/* Producer: wait until done reaches seq (0), or the deadline (CLOCK_MONOTONIC, absolute;
 * NULL: none) passes (-ETIMEDOUT). -EOWNERDEAD: the I/O thread has let go of the
 * publisher; the producer fails what is left itself (sv_pub_fail) and may wait again. */
int sv_done_wait(struct salvo_publisher *p, uint64_t seq, const struct timespec *deadline);

#endif
