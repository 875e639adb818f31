/* SPDX-License-Identifier: MIT */
/*
 * The I/O thread's loop: one per client, owner of the socket, the io_uring, the channel
 * table and the publisher list (io_internal.h lists the files it runs through, in the
 * order their calls go).
 *
 * Each turn: act on an end recorded during the last one (sv_teardown: the only place the
 * connection is torn down or recovery starts), take the requests and settles application
 * threads queued, run the timers (heartbeats, blocked_timeout), start a send unless one
 * is in flight, arm a read, then park or wait for a completion and reap it. Between
 * connections the turn only takes requests and settles and, when due, tries to reconnect
 * (recover.c).
 *
 * Parking, and the linger after a send that makes it safe for producers to skip the
 * kick: park.c. Batching publishers' envelopes that have lingered are closed each turn
 * (pub_batch.c), and the next one due bounds the sleep.
 */
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "io_internal.h"
#include "park.h"
#include "pub_done.h"
#include "read_hold.h"

/* Timers. */

static uint64_t heartbeat_ns(const salvo_client *c)
{
	return (uint64_t)c->sess.heartbeat * 1000000000u;
}

/* blocked_timeout: a block that lasts too long ends the connection. Returns the deadline
 * (0: none). */
static uint64_t blocked_deadline(salvo_client *c, uint64_t now)
{
	uint64_t limit = (uint64_t)c->set.conf.blocked_timeout * 1000000u;
	/* This thread is blocked_at's writer: a relaxed load reads its own store. */
	uint64_t since = atomic_load_explicit(&c->blocked_at, memory_order_relaxed);

	if (!c->blocked || !limit)
		return 0;
	if (now - since >= limit) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "blocked by the broker for %u ms (%s): blocked_timeout",
			     c->set.conf.blocked_timeout, c->blocked_reason);
		/* Not a loss to recover from: the broker is up and refusing. */
		sv_conn_fail_final(c, &e);
		return 0;
	}
	return since + limit;
}

static uint64_t heartbeats(salvo_client *c, uint64_t now)
{
	uint64_t hb = heartbeat_ns(c);

	if (!hb)
		return 0;
	/* While we hold reads for the consumers, the broker's frames wait in the socket:
	 * its silence is ours. The count starts again when reading resumes. */
	if (sv_hold_active(c) && !c->recv_inflight)
		c->last_recv_ns = now;
	if (now - c->last_recv_ns > 2 * hb) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "no frame from the broker for %u s (heartbeat %u s): connection dead",
			     2 * c->sess.heartbeat, c->sess.heartbeat);
		sv_conn_fail(c, &e);
		return 0;
	}
	/* A send makes no progress while the socket's buffers are full: the broker reads
	 * nothing. Unless it said it blocks us, that long is a dead broker whatever its
	 * heartbeats say (RabbitMQ's send_timeout treats a silent client the same way). */
	if (c->send_inflight && !c->blocked && now - c->send_started_ns > 2 * hb) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "the broker has read nothing for %u s (2 x heartbeat) without "
			     "blocking the connection: connection dead",
			     2 * c->sess.heartbeat);
		sv_conn_fail(c, &e);
		return 0;
	}
	if (now - c->last_send_ns >= hb / 2 && !c->send_inflight) {
		uint8_t hbf[SV_HEARTBEAT_FRAME_SIZE];
		sv_frame_put_heartbeat(hbf);
		sv_out_append(c, hbf, sizeof hbf);
		c->last_send_ns = now; /* don't queue another while this one waits */
	}
	uint64_t dead = c->last_recv_ns + 2 * hb + 1;
	/* While a send is in flight no heartbeat is due (it would queue behind the send). */
	if (c->send_inflight) {
		uint64_t stuck = c->send_started_ns + 2 * hb + 1;
		return stuck < dead && !c->blocked ? stuck : dead;
	}
	uint64_t next_send = c->last_send_ns + hb / 2;
	return next_send < dead ? next_send : dead;
}

static bool queue_empty(salvo_client *c)
{
	bool empty;
	pthread_mutex_lock(&c->lock);
	empty = CK_STAILQ_EMPTY(&c->queue);
	pthread_mutex_unlock(&c->lock);
	return empty;
}

static void arm(salvo_client *c, uint64_t now)
{
	struct io_uring_sqe *sqe;

	sv_recv_hold_cut(c);
	if (c->recv_hold_until && now >= c->recv_hold_until)
		sv_recv_unhold(c);
	/* The application has taken enough: go on. Until decoding stops at the bound with
	 * the hold recorded (reads_held), which is what makes the application's next take
	 * wake this thread: a decode that refills past the bound must not leave it unset. */
	while (c->input_pending && sv_live(c) && !sv_hold_reads(c))
		sv_decode_input(c, 0);
	if (!c->recv_inflight && !c->recv_hold_until && sv_live(c) && !c->input_pending &&
	    !sv_hold_reads(c)) {
		sqe = io_uring_get_sqe(&c->uring);
		sv_transport_prep_recv(c, sqe);
		io_uring_sqe_set_data64(sqe, SV_UD_RECV);
		c->recv_inflight = true;
	}
	sv_park_arm_wake(c);
}

static void reap(salvo_client *c)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&c->uring, head, cqe)
	{
		int res = cqe->res;
		switch (io_uring_cqe_get_data64(cqe)) {
		case SV_UD_SEND:
			sv_stat_add(&c->ioctr.sends, 1);
			sv_stat_add(&c->ioctr.send_bytes, res > 0 ? (uint64_t)res : 0);
			sv_on_send(c, res);
			break;
		case SV_UD_RECV:
			sv_stat_add(&c->ioctr.recvs, 1);
			sv_stat_add(&c->ioctr.recv_bytes, res > 0 ? (uint64_t)res : 0);
			sv_on_recv(c, res);
			break;
		case SV_UD_WAKE:
			sv_stat_add(&c->ioctr.wakeups, 1);
			c->wake_inflight = false;
			break;
		}
		n++;
	}
	io_uring_cq_advance(&c->uring, n);
}


/* Sleep until a completion comes or until deadline (0: none). */
static void wait_for(salvo_client *c, uint64_t now, uint64_t deadline)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;

	if (deadline) {
		uint64_t left = deadline > now ? deadline - now : 0;
		ts.tv_sec = (long long)(left / 1000000000u);
		ts.tv_nsec = (long long)(left % 1000000000u);
		tsp = &ts;
	}
	sv_stat_add(&c->ioctr.waits, 1);
	io_uring_submit_and_wait_timeout(&c->uring, &cqe, 1, tsp, NULL);
}

/* Between connections: serve requests and settles, try again when due. */
static void recovering_turn(salvo_client *c)
{
	uint64_t now = sv_now_ns(), next;

	sv_settle_pubs(c);
	next = sv_recover_step(c, now);
	if (atomic_load(&c->state) != SV_CONN_RECOVERING || c->end_pending)
		return;
	sv_park_arm_wake(c);
	/* From now: the attempt may have taken up to connection_timeout. */
	wait_for(c, sv_now_ns(), next);
	reap(c);
}

/* A turn with the connection up. */
static void open_turn(salvo_client *c)
{
	uint64_t now, deadline, batch;

	if (c->paused)
		sv_recover_hooks_done(c);
	now = sv_now_ns();
	deadline = heartbeats(c, now);
	if (sv_live(c)) {
		uint64_t bd = blocked_deadline(c, now);
		if (bd && (!deadline || bd < deadline))
			deadline = bd;
	}
	if (!sv_live(c))
		return;
	/* Envelopes that have lingered go out with this turn's send. */
	batch = sv_batch_linger(c, now);
	if (batch && (!deadline || batch < deadline))
		deadline = batch;
	if (!c->send_inflight)
		sv_start_send(c);
	arm(c, now);
	if (c->end_pending)
		return;
	if (c->recv_hold_until && (!deadline || c->recv_hold_until < deadline))
		deadline = c->recv_hold_until;
	if (!c->send_inflight) {
		/* Nothing to wait for but new work: park. Pairs with sv_client_kick (and a
		 * producer that starts waiting for a confirm kicks after saying so). */
		sv_park_begin(c, deadline && deadline <= now + SV_PARK_SOON_NS);
		/* After the fence: an envelope opened since the look above (its producer
		 * kicked, or we see it here) sets how long we may sleep; one that is due is
		 * closed, and the rings are then not idle. */
		batch = sv_batch_linger(c, sv_now_ns());
		if (batch && (!deadline || batch < deadline))
			deadline = batch;
		bool work = !queue_empty(c) || !sv_rings_idle(c) ||
			    ck_pr_load_ptr(&c->settles.head) ||
			    sv_recv_hold_cut(c);

		/* The linger runs before every sleep that follows a send of ring bytes: a turn
		 * cut short by other work keeps it due. */
		if (!work && c->sent_lately) {
			c->sent_lately = false;
			work = sv_park_linger(c);
		}
		if (work) {
			sv_park_end(c);
			if (io_uring_submit(&c->uring) > 0)
				sv_stat_add(&c->ioctr.submits, 1);
			return;
		}
	} else if (c->recv_hold_until) {
		/* Asleep until the send completes, with a read held: a producer that starts to
		 * wait for what the read brings wakes us, or is seen here (park.c). */
		sv_hold_sleep_begin(c);
		if (sv_recv_hold_cut(c) && (!deadline || c->recv_hold_until < deadline))
			deadline = c->recv_hold_until;
	}
	wait_for(c, now, deadline);
	sv_park_end(c);
	sv_hold_sleep_end(c);
	reap(c);
}

/* An end was recorded: let the socket's operations finish (teardown may close it, and
 * recovery reuses the buffers they point into), then tear down or recover. */
static void end_connection(salvo_client *c)
{
	shutdown(c->sess.fd, SHUT_RDWR);
	while (c->recv_inflight || c->send_inflight) {
		io_uring_submit_and_wait(&c->uring, 1);
		reap(c);
	}
	sv_teardown(c);
}

void *sv_io_main(void *arg)
{
	salvo_client *c = arg;

	sv_io_client = c; /* deliveries let go of here go straight back (delivery.c) */
	/* The records that carried connection.open-ok may have brought the broker's next
	 * frames. */
	sv_decode_input(c, 0);
	while (atomic_load(&c->state) != SV_CONN_CLOSED) {
		/* The safe point: nothing of the last turn is on the stack. */
		if (c->end_pending) {
			end_connection(c);
			continue;
		}
		sv_stat_add(&c->ioctr.turns, 1);
		sv_take_requests(c);
		sv_take_settles(c);
		if (atomic_load(&c->state) == SV_CONN_RECOVERING)
			recovering_turn(c);
		else
			open_turn(c);
	}

	/* Closed: let every operation in flight finish before the ring can go away. */
	shutdown(c->sess.fd, SHUT_RDWR);
	sv_client_wake(c);
	while (c->recv_inflight || c->send_inflight || c->wake_inflight) {
		io_uring_submit_and_wait(&c->uring, 1);
		reap(c);
	}
	/* Nothing is in flight any more: give every ring back (waking blocked producers) and
	 * let go of publishers being detached. Requests queued later fail at submission. */
	sv_take_requests(c);
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		struct sv_request *detach = pub->detach;

		sv_pub_fail(pub);
		pub->detach = NULL;
		/* From here the producer fails what it commits later itself; wake it in case it
		 * sleeps on a confirm. Before the detach completes: then it may be freed. */
		sv_done_orphan(pub);
		if (detach)
			sv_detach_done(c, detach, pub, true);
	}
	c->npubs = 0;
	sv_settle_close(c);
	sv_dispatch_wake(c); /* closed: salvo_client_dispatch stops waiting */
	/* Release: whoever sees io_exited may unmap rings this thread was reading. */
	atomic_store_explicit(&c->io_exited, 1, memory_order_release);
	sv_futex_wake(&c->io_exited, INT_MAX);
	return NULL;
}
