/* SPDX-License-Identifier: MIT */
/*
 * Holding reads while the consumers' queues are full: both sides of the handshake.
 *
 * Every message queued on a consumer counts its bytes in client->buffered, from the I/O
 * thread's hand-over (sv_hold_charge) until the application takes it (sv_hold_taken).
 * When buffered passes consumer.buffer_bytes, the I/O thread stops decoding
 * (sv_hold_over_bound) and stops arming reads (sv_hold_reads): the socket's buffers fill,
 * which stops the broker. When the application has taken enough to bring buffered down to
 * half the bound, the taker wakes the I/O thread to read again.
 *
 * reads_held and buffered pair as a Dekker: the I/O thread stores reads_held then loads
 * buffered (both seq_cst); a taker subtracts from buffered (seq_cst) then loads
 * reads_held, and wakes the thread if it is set. Either the I/O thread sees the taker's
 * subtraction and does not hold, or the taker sees the hold and wakes it.
 */
#include "park.h"
#include "read_hold.h"

uint64_t sv_hold_charge(salvo_client *c, uint64_t cost)
{
	/* Counted before the message is visible, so a taker never subtracts what was not
	 * added. */
	uint64_t now = atomic_fetch_add(&c->buffered, cost) + cost;
	uint64_t peak = atomic_load_explicit(&c->cctr.buffered_peak, memory_order_relaxed);

	if (now > peak)
		atomic_store_explicit(&c->cctr.buffered_peak, now, memory_order_relaxed);
	return now;
}

void sv_hold_taken(salvo_client *c, uint64_t cost)
{
	uint64_t left = atomic_fetch_sub(&c->buffered, cost) - cost;

	if (left <= c->set.consumer_buffer_bytes / 2 && atomic_load(&c->reads_held))
		sv_client_wake(c);
}

bool sv_hold_over_bound(salvo_client *c)
{
	/* With what waits for the read's hand-over, charged only then (consumer.c). */
	return atomic_load_explicit(&c->buffered, memory_order_relaxed) + c->pend_cost >
	       c->set.consumer_buffer_bytes;
}

bool sv_hold_reads(salvo_client *c)
{
	uint64_t limit = c->set.consumer_buffer_bytes;

	if (!atomic_load(&c->reads_held)) {
		if (atomic_load(&c->buffered) <= limit)
			return false;
		atomic_fetch_add_explicit(&c->cctr.read_holds, 1, memory_order_relaxed);
		/* seq_cst store, then load: pairs with sv_hold_taken's subtraction and load. */
		atomic_store(&c->reads_held, 1);
	}
	if (atomic_load(&c->buffered) > limit / 2)
		return true;
	atomic_store(&c->reads_held, 0);
	return false;
}

bool sv_hold_active(salvo_client *c)
{
	return atomic_load_explicit(&c->reads_held, memory_order_relaxed);
}
