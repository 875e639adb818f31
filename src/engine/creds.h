/* SPDX-License-Identifier: MIT */
/*
 * The credentials a client logs in with, which change (salvo.h, "Credentials that
 * change"): the configuration's user and password, replaced by salvo_client_update_secret
 * and by what the credentials callback gives before each connection attempt. Internal to
 * libsalvo.
 */
#ifndef SALVO_ENGINE_CREDS_H
#define SALVO_ENGINE_CREDS_H

#include "conf_internal.h"
#include "salvo.h"

/*
 * A user and password. A client holds the current ones (written by the thread that makes
 * the connection: salvo_client_new's before the I/O thread starts, the I/O thread after);
 * the callback fills a copy, which becomes current only when the whole answer is good.
 */
struct salvo_credentials {
	char user[SV_NAME_MAX + 1];
	char password[SV_PASSWORD_MAX + 1];
	/* The callback's copy: a salvo_credentials_set refused (its status, and why). */
	int refused;
	char why[96];
};

/* The configuration's user and password. */
void sv_creds_init(struct salvo_credentials *cr, const struct salvo_conf *conf);

/* Forget them (the password wiped from memory). */
void sv_creds_wipe(struct salvo_credentials *cr);

/* Replace the password (at most SV_PASSWORD_MAX bytes, as the caller checked). */
void sv_creds_set_password(struct salvo_credentials *cr, const char *password);

/*
 * Before a connection attempt: with conf's credentials callback, ask it, and on a good
 * answer make it current in cr. Returns 0 (also without a callback), or the failed
 * attempt's status with err filled (kind LOCAL): the callback's failure, or a refused
 * salvo_credentials_set. cr is unchanged on failure.
 */
int sv_creds_refresh(const struct salvo_conf *conf, struct salvo_credentials *cr, salvo_error *err);

#endif
