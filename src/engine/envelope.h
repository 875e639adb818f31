/* SPDX-License-Identifier: MIT */
/*
 * Envelopes as consumers see them: split into records on the I/O thread, settled as one
 * message once every record is settled (envelope.c has the argument).
 */
#ifndef SALVO_ENGINE_ENVELOPE_H
#define SALVO_ENGINE_ENVELOPE_H

#include "engine.h"

/*
 * I/O thread: split d, whose content header said info, into its records: decompress it
 * (in scratch, when compressed), check it, and make a handle per record, all in one
 * allocation. max_bytes bounds what the split envelope takes: its decompressed body and
 * sizeof(struct salvo_message) per record. On success returns 0 with *first the first of
 * *count handles, consecutive in memory; d holds a reference per record, the record's handles
 * share d's cost (its compressed body, freed, no longer counts), and its properties lose
 * content_type and content_encoding, which describe the envelope. On failure returns -1
 * with err saying what is wrong, and d is as it was.
 */
int sv_envelope_split(struct sv_delivery *d, const struct sv_batch_info *info, size_t max_bytes,
		      struct sv_scratch *scratch, struct salvo_message **first, uint32_t *count,
		      struct sv_codec_error *err);

/* Records of a split envelope. Any thread. */
uint32_t sv_envelope_count(const struct sv_envelope *e);

/* The last handle of its delivery is gone. */
void sv_envelope_free(struct sv_envelope *e);

/* The client is freed. */
void sv_scratch_free(struct sv_scratch *s);

/*
 * Any thread: salvo_message_ack, _nack or _reject of record m (multiple: every record of
 * its envelope up to it, and every delivery of the channel before the envelope). Returns
 * 0, SALVO_ERR_INVALID_STATE for a record settled already, or what sv_settle_check and
 * sv_settle_push return.
 */
int sv_envelope_settle(salvo_message *m, enum sv_settle_kind kind, bool multiple, bool requeue,
		       salvo_error *err);

#endif
