/* SPDX-License-Identifier: MIT */
/*
 * Credentials that change: what a client logs in with, the credentials callback asked
 * before each connection attempt, and connection.update-secret. The I/O thread's half of
 * update-secret (keeping the secret, sending the method or not) is in io_channel.c with
 * the other requests, its reply in io_recv.c with the other connection methods.
 */
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "engine.h"
#include "error.h"

void sv_creds_init(struct salvo_credentials *cr, const struct salvo_conf *conf)
{
	memset(cr, 0, sizeof *cr);
	memcpy(cr->user, conf->user, sizeof cr->user);
	memcpy(cr->password, conf->password, sizeof cr->password);
}

void sv_creds_wipe(struct salvo_credentials *cr)
{
	explicit_bzero(cr, sizeof *cr);
}

void sv_creds_set_password(struct salvo_credentials *cr, const char *password)
{
	size_t n = strlen(password);

	memcpy(cr->password, password, n + 1);
	/* What a longer password left behind. */
	explicit_bzero(cr->password + n + 1, sizeof cr->password - n - 1);
}

/* A refusal the attempt reports, whatever the callback returns: the first one stays. */
static int refuse(struct salvo_credentials *cr, const char *why)
{
	if (!cr->refused) {
		cr->refused = SALVO_ERR_INVALID_ARGUMENT;
		snprintf(cr->why, sizeof cr->why, "%s", why);
	}
	return SALVO_ERR_INVALID_ARGUMENT;
}

int salvo_credentials_set(salvo_credentials *cred, const char *user, const char *password)
{
	if (!cred)
		return SALVO_ERR_INVALID_ARGUMENT;
	if (!password)
		return refuse(cred, "salvo_credentials_set: the password is NULL");
	if (user && strlen(user) > SV_NAME_MAX)
		return refuse(cred, "salvo_credentials_set: the user is longer than 255 bytes");
	if (strlen(password) > SV_PASSWORD_MAX)
		return refuse(cred,
			      "salvo_credentials_set: the password is longer than 4096 bytes");
	if (user)
		memcpy(cred->user, user, strlen(user) + 1);
	sv_creds_set_password(cred, password);
	return 0;
}

int sv_creds_refresh(const struct salvo_conf *conf, struct salvo_credentials *cr, salvo_error *err)
{
	struct salvo_credentials ask;
	salvo_error why;
	int rc;

	if (!conf->creds_fn)
		return 0;
	ask = *cr;
	ask.refused = 0;
	memset(&why, 0, sizeof why);
	rc = conf->creds_fn(conf->creds_arg, &ask, &why);
	if (ask.refused) {
		rc = sv_error_set(err, ask.refused, SALVO_ERROR_LOCAL,
				  "credentials callback failed: %s", ask.why);
	} else if (rc) {
		/* The callback's text is the application's; the password it might hold is
		 * masked as any other text of salvo's. */
		why.text[sizeof why.text - 1] = '\0';
		sv_redact(why.text, ask.password);
		sv_redact(why.text, cr->password);
		rc = sv_error_set(err, rc < 0 ? rc : SALVO_ERR_IO, SALVO_ERROR_LOCAL,
				  "credentials callback failed: %s",
				  why.text[0] ? why.text : "(no reason given)");
	} else {
		memcpy(cr->user, ask.user, sizeof cr->user);
		sv_creds_set_password(cr, ask.password);
	}
	sv_creds_wipe(&ask);
	return rc;
}

/* The application's half of connection.update-secret (salvo.h). */
int salvo_client_update_secret(salvo_client *c, const char *secret, const char *reason,
			       salvo_error *err)
{
	struct sv_method m = {.id = SV_CONNECTION_UPDATE_SECRET};
	struct sv_codec_error cerr;
	struct sv_request *req;
	size_t len, cap;
	int rc;

	if (!c || !secret || !*secret)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_client_update_secret: %s",
				    !c ? "no client" : "the secret is NULL or empty");
	if (!reason)
		reason = "";
	len = strlen(secret);
	if (len > SV_PASSWORD_MAX || strlen(reason) > SV_SHORTSTR_MAX)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_client_update_secret: the %s",
				    len > SV_PASSWORD_MAX ? "secret is longer than 4096 bytes"
							  : "reason is longer than 255 bytes");
	m.a.connection_update_secret.new_secret =
	    (struct sv_bytes){(const uint8_t *)secret, (uint32_t)len};
	m.a.connection_update_secret.reason =
	    (struct sv_bytes){(const uint8_t *)reason, (uint32_t)strlen(reason)};
	/* The frame's envelope, the method's id, the two lengths and the strings. */
	cap = 64 + len + SV_SHORTSTR_MAX;
	req = sv_request_new(SV_REQ_SECRET);
	if (!req)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	req->frame = malloc(cap);
	req->secret = strdup(secret);
	rc = !req->frame || !req->secret
		 ? sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory")
		 : 0;
	if (!rc) {
		uint32_t frame_max;

		pthread_mutex_lock(&c->lock); /* a reconnection replaces the session under it */
		frame_max = c->sess.frame_max;
		pthread_mutex_unlock(&c->lock);
		req->frame_len = sv_frame_put_method(req->frame, cap, 0, &m, &cerr);
		if (!req->frame_len)
			rc = sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
					  "salvo_client_update_secret: %s", cerr.reason);
		else if (req->frame_len > frame_max)
			rc = sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
					  "salvo_client_update_secret: a %zu-byte frame exceeds "
					  "frame_max %u",
					  req->frame_len, frame_max);
	}
	if (rc) {
		sv_request_put(req);
		sv_request_put(req);
		return rc;
	}
	req->reply_id = SV_CONNECTION_UPDATE_SECRET_OK;
	rc = sv_request_submit(c, req, err);
	if (rc) {
		sv_request_put(req);
		sv_request_put(req);
		return rc;
	}
	rc = sv_request_wait(req, c->set.rpc_timeout_ms, err);
	sv_request_put(req);
	return rc;
}
