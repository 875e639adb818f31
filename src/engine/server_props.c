/* SPDX-License-Identifier: MIT */
/*
 * What the broker said of itself in connection.start (its server properties and their
 * capabilities table), for the application. The handshake keeps them in the session
 * (connect.c); a reconnection replaces the session under the client's lock (recover.c),
 * and the application reads them under that lock, so it never sees half of each.
 */
#include <string.h>

#include "engine.h"
#include "props.h"

#include "../codec/table.h"

int salvo_client_server_properties(salvo_client *c, salvo_table **copy, salvo_error *err)
{
	salvo_table *t;

	if (!c || !copy)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_client_server_properties: c and copy are required");
	pthread_mutex_lock(&c->lock);
	t = sv_table_from_wire((struct sv_table){c->sess.server_props, c->sess.server_props_len});
	pthread_mutex_unlock(&c->lock);
	*copy = t;
	if (!t)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	return 0;
}

bool salvo_client_server_capability(salvo_client *c, const char *name)
{
	struct sv_field f;
	bool yes = false;

	if (!c || !name)
		return false;
	pthread_mutex_lock(&c->lock);
	if (sv_table_find((struct sv_table){c->sess.server_props, c->sess.server_props_len},
			  "capabilities", &f) &&
	    f.type == SV_FIELD_TABLE)
		yes = sv_table_find(f.v.table, name, &f) && f.type == SV_FIELD_BOOL && f.v.b;
	pthread_mutex_unlock(&c->lock);
	return yes;
}
