/* SPDX-License-Identifier: MIT */
/*
 * TLS. Through sv_connect: the AMQP handshake over TLS against RabbitMQ, client
 * certificate + SASL EXTERNAL, and each refusal (unknown CA, wrong host name, expired
 * certificate, a TLS 1.1-only server) as SALVO_ERR_TLS with OpenSSL's reason. A TLS server
 * inside the test (OpenSSL, memory BIOs, on 127.0.0.1:0) serves the bad certificates and
 * records every byte salvo sends, to show that nothing goes out in clear and that no
 * application data precedes verification. Through salvo_client (cases client-*): the data
 * path, records carried by the io_uring I/O thread.
 *
 * argv[1] names the case. Every case needs SALVO_TEST_TLS_DIR (the certificates
 * scripts/tls.sh makes); broker cases also need SALVO_TEST_TLS_URI (the amqps URI
 * scripts/rabbitmq.sh start --tls prints) and some SALVO_TEST_URI. Without them: exit 77.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../../src/engine/conf_internal.h"
#include "../../src/engine/connect.h"
#include "../../src/engine/tls.h"

#include "../check.h"

#define SKIP	       77
#define BOGUS_PASSWORD "not-the-password"

static const char *tls_dir;

static const char *cert(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof paths[0], "%s/%s", tls_dir, name);
	return p;
}

static void show(int rc, const salvo_error *e)
{
	printf("  rc %d (%s), kind %d, reply %u, text \"%s\"\n", rc, salvo_err2str(rc), e->kind,
	       e->reply_code, e->text);
}

/* rc must be status with kind LOCAL (every TLS refusal is) and text holding want. */
static void expect(int rc, const salvo_error *e, int status, const char *want)
{
	show(rc, e);
	CHECK(rc == status);
	CHECK(e->status == status);
	CHECK(e->kind == SALVO_ERROR_LOCAL);
	if (!strstr(e->text, want)) {
		fprintf(stderr, "expected \"%s\" in the error text\n", want);
		exit(1);
	}
}

/*
 * Connection parameters as salvo_client_new will make them: from a conf given a URI and
 * then key=value settings (NULL-terminated). The conf is kept for the strings.
 */
static struct sv_connect_params params_from(const char *uri, const char *const *kv)
{
	static salvo_conf *confs[8];
	static int next;
	salvo_conf *conf = salvo_conf_new();
	char errstr[256];
	const struct sv_endpoint *ep;
	struct sv_connect_params p;

	CHECK(conf);
	if (salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "uri %s: %s\n", uri, errstr);
		exit(1);
	}
	for (; kv && kv[0]; kv += 2)
		if (salvo_conf_set(conf, kv[0], kv[1], errstr, sizeof errstr)) {
			fprintf(stderr, "%s=%s: %s\n", kv[0], kv[1], errstr);
			exit(1);
		}
	salvo_conf_destroy(confs[next % 8]);
	confs[next++ % 8] = conf;
	ep = &conf->endpoints[0];
	p = (struct sv_connect_params){
	    .host = ep->host,
	    .port = (uint16_t)ep->port,
	    .user = conf->user,
	    .password = conf->password,
	    .vhost = conf->vhost,
	    .heartbeat = 10,
	    .connection_name = "salvo test_tls",
	    .timeout_ms = 5000,
	    .tls = ep->tls,
	    .auth = (enum sv_auth)conf->auth_mechanism,
	};
	sv_tls_settings_from_conf(conf, &p.tls_settings);
	return p;
}

/* An amqps URI for the in-test server, trusting the test CA. */
static struct sv_connect_params params_local(const char *host, uint16_t port, const char *const *kv)
{
	char uri[1024];

	snprintf(uri, sizeof uri, "amqps://guest:guest@%s:%u?cacertfile=%s", host, port,
		 cert("ca.pem"));
	return params_from(uri, kv);
}

/* Connect, expecting success, and close politely: close-ok must arrive over TLS. */
static void connect_and_close(const struct sv_connect_params *p)
{
	struct sv_session s;
	salvo_error e;
	int rc = sv_connect(p, &s, &e);

	show(rc, &e);
	CHECK(rc == 0);
	CHECK(s.fd >= 0);
	CHECK(s.tls != NULL);
	CHECK(!strcmp(s.server_product, "RabbitMQ"));
	CHECK(s.frame_max >= 4096);
	rc = sv_session_close(&s, 200, "test_tls done", 5000, &e);
	show(rc, &e);
	CHECK(rc == 0);
	CHECK(s.fd == -1 && s.tls == NULL);
}

/*
 * The in-test TLS server: one connection, OpenSSL over memory BIOs fed from the socket, so
 * that every byte the client sends is recorded (raw) before TLS sees it. After a completed
 * handshake it reads up to 8 bytes of plaintext (the AMQP protocol header), then closes.
 */
struct server {
	const char *cert, *key;
	int max_version; /* 0: OpenSSL's default (TLS 1.3) */
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	/* Filled by the thread, read after server_finish (the join orders them). */
	uint8_t raw[65536];
	size_t raw_len;
	uint8_t plain[8];
	size_t plain_len;
	bool handshake_done;
	char sni[256]; /* "" when the client sent none */
};

static SSL_CTX *server_ctx(const struct server *sv)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	CHECK(ctx);
	CHECK(SSL_CTX_use_certificate_chain_file(ctx, sv->cert) == 1);
	CHECK(SSL_CTX_use_PrivateKey_file(ctx, sv->key, SSL_FILETYPE_PEM) == 1);
	if (sv->max_version) {
		/* OpenSSL 3's default security level refuses TLS < 1.2 even to a server that
		 * asks for it: level 0 lets this one speak TLS 1.1 for real. */
		SSL_CTX_set_security_level(ctx, 0);
		CHECK(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") == 1);
		CHECK(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) == 1);
		CHECK(SSL_CTX_set_max_proto_version(ctx, sv->max_version) == 1);
	}
	return ctx;
}

static void flush_bio(BIO *wbio, int fd)
{
	uint8_t buf[16384];
	int n;

	while ((n = BIO_read(wbio, buf, sizeof buf)) > 0)
		(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	struct pollfd pfd = {sv->listen_fd, POLLIN, 0};
	SSL_CTX *ctx = server_ctx(sv);
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new(BIO_s_mem());
	BIO *wbio = BIO_new(BIO_s_mem());
	struct timeval tv = {5, 0};
	bool failed = false;
	int fd;

	CHECK(ssl && rbio && wbio);
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_accept_state(ssl);
	CHECK(poll(&pfd, 1, 10000) == 1);
	fd = accept(sv->listen_fd, NULL, NULL);
	CHECK(fd >= 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
	for (;;) {
		uint8_t buf[16384];
		const char *name;
		ssize_t n;

		if (!sv->handshake_done) {
			int r = SSL_do_handshake(ssl);

			if (r == 1)
				sv->handshake_done = true;
			else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
				failed = true;
			name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
			if (name)
				snprintf(sv->sni, sizeof sv->sni, "%s", name);
		}
		if (sv->handshake_done) {
			size_t got;

			while (sv->plain_len < sizeof sv->plain &&
			       SSL_read_ex(ssl, sv->plain + sv->plain_len,
					   sizeof sv->plain - sv->plain_len, &got) == 1)
				sv->plain_len += got;
		}
		flush_bio(wbio, fd);
		if (failed || sv->plain_len == sizeof sv->plain)
			break;
		n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		CHECK(sv->raw_len + (size_t)n <= sizeof sv->raw);
		memcpy(sv->raw + sv->raw_len, buf, (size_t)n);
		sv->raw_len += (size_t)n;
		CHECK(BIO_write(rbio, buf, (int)n) == n);
	}
	/* Whatever the client still sends (an alert) is recorded too. */
	for (;;) {
		uint8_t buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n <= 0 || sv->raw_len + (size_t)n > sizeof sv->raw)
			break;
		memcpy(sv->raw + sv->raw_len, buf, (size_t)n);
		sv->raw_len += (size_t)n;
	}
	ERR_clear_error();
	close(fd);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return NULL;
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sin, len) == 0);
	CHECK(listen(fd, 4) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct server *server_start(const char *name, int max_version)
{
	struct server *sv = calloc(1, sizeof *sv);
	char key[64];

	CHECK(sv);
	snprintf(key, sizeof key, "%s.key", name);
	sv->key = cert(key);
	snprintf(key, sizeof key, "%s.pem", name);
	sv->cert = cert(key);
	sv->max_version = max_version;
	sv->listen_fd = listen_loopback(&sv->port);
	CHECK(pthread_create(&sv->thread, NULL, server_main, sv) == 0);
	return sv;
}

static void server_finish(struct server *sv)
{
	CHECK(pthread_join(sv->thread, NULL) == 0);
	close(sv->listen_fd);
	printf("  server: %zu bytes received, handshake %s, SNI \"%s\", plaintext %zu bytes\n",
	       sv->raw_len, sv->handshake_done ? "done" : "not done", sv->sni, sv->plain_len);
}

/* What salvo sent must start with a TLS handshake record (a ClientHello) and never hold
 * the AMQP protocol header in clear. */
static void check_no_clear_text(const struct server *sv)
{
	CHECK(sv->raw_len >= 5);
	CHECK(sv->raw[0] == 0x16 && sv->raw[1] == 0x03); /* handshake record, TLS */
	CHECK(sv->raw[5] == 0x01);			 /* ClientHello */
	CHECK(!memmem(sv->raw, sv->raw_len, "AMQP", 4));
}

/* A refusal against the in-test server: the error, and that the client sent only a TLS
 * handshake (its refusal alert included), not one byte of AMQP. */
static int refused_by_client(const char *cert_name, int max_version, const char *host,
			     const char *want)
{
	struct server *sv = server_start(cert_name, max_version);
	struct sv_connect_params p = params_local(host, sv->port, NULL);
	struct sv_session s;
	salvo_error e;
	int rc = sv_connect(&p, &s, &e);

	server_finish(sv);
	expect(rc, &e, SALVO_ERR_TLS, want);
	CHECK(strstr(e.text, "TLS handshake with "));
	CHECK(s.fd == -1 && s.tls == NULL);
	CHECK(!sv->handshake_done);
	check_no_clear_text(sv);
	CHECK(sv->plain_len == 0);
	free(sv);
	return 0;
}

static const char *tls_uri(void)
{
	return getenv("SALVO_TEST_TLS_URI");
}

/* Cases. */

static int case_handshake(void)
{
	struct sv_connect_params p;

	if (!tls_uri())
		return SKIP;
	p = params_from(tls_uri(), NULL);
	CHECK(p.tls && !strcmp(p.host, "localhost"));
	connect_and_close(&p);
	return 0;
}

/* The broker's certificate also names 127.0.0.1: an address is checked as an address. */
static int case_handshake_ip(void)
{
	const char *kv[] = {"host", "127.0.0.1", NULL};
	struct sv_connect_params p;

	if (!tls_uri())
		return SKIP;
	p = params_from(tls_uri(), kv);
	CHECK(!strcmp(p.host, "127.0.0.1"));
	connect_and_close(&p);
	return 0;
}

static int case_unknown_ca(void)
{
	return refused_by_client("unknown-ca", 0, "localhost",
				 "certificate verify failed: unable to get local issuer "
				 "certificate");
}

/* The real broker, trusted through a CA that did not sign its certificate. RabbitMQ sends
 * its CA along with its certificate, so OpenSSL names the chain's root as the problem. */
static int case_unknown_ca_broker(void)
{
	const char *kv[] = {"cacertfile", cert("other-ca.pem"), NULL};
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;

	if (!tls_uri())
		return SKIP;
	p = params_from(tls_uri(), kv);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TLS,
	       "certificate verify failed: self-signed certificate in certificate chain");
	return 0;
}

static int case_wrong_host(void)
{
	return refused_by_client("wrong-host", 0, "localhost",
				 "certificate verify failed: hostname mismatch");
}

static int case_wrong_ip(void)
{
	return refused_by_client("wrong-host", 0, "127.0.0.1",
				 "certificate verify failed: IP address mismatch");
}

static int case_expired(void)
{
	return refused_by_client("expired", 0, "localhost",
				 "certificate verify failed: certificate has expired");
}

/* A server that speaks at most TLS 1.1. First a client that allows TLS 1.1 (the test's,
 * security level 0) shows the server really does; then salvo, which offers only TLS 1.2
 * and 1.3, must fail. An OpenSSL server reads the offer (supported_versions) and refuses
 * with a protocol_version alert; an older one would answer TLS 1.1 and salvo would refuse
 * with "unsupported protocol". */
static int case_tls11_server(void)
{
	struct server *sv = server_start("server", TLS1_1_VERSION);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(sv->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(ctx && fd >= 0);
	SSL_CTX_set_security_level(ctx, 0);
	CHECK(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") == 1);
	CHECK(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) == 1);
	CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
	ssl = SSL_new(ctx);
	CHECK(ssl && SSL_set_fd(ssl, fd) == 1);
	CHECK(SSL_connect(ssl) == 1);
	printf("  the test server speaks %s\n", SSL_get_version(ssl));
	CHECK(SSL_version(ssl) == TLS1_1_VERSION);
	CHECK(SSL_write(ssl, "AMQP\0\0\x09\x01", 8) == 8);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	server_finish(sv);
	CHECK(sv->handshake_done);
	free(sv);

	return refused_by_client("server", TLS1_1_VERSION, "localhost",
				 "tlsv1 alert protocol version (salvo speaks TLS 1.2 or later)");
}

/* Connect to an in-test server serving cert_name as host with kv: the handshake completes
 * (the server hangs up after the protocol header) and the server saw SNI want ("": none). */
static void sni_sent(const char *cert_name, const char *host, const char *const *kv,
		     const char *want)
{
	struct server *sv = server_start(cert_name, 0);
	struct sv_connect_params p = params_local(host, sv->port, kv);
	struct sv_session s;
	salvo_error e;
	int rc = sv_connect(&p, &s, &e);

	server_finish(sv);
	show(rc, &e);
	CHECK(rc == SALVO_ERR_IO && sv->handshake_done);
	CHECK(!strcmp(sv->sni, want));
	free(sv);
}

/* SNI: the host name for a name, nothing for an address, the override when given, nothing
 * when disabled (the host is still checked). */
static int case_sni(void)
{
	struct server *sv;
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;
	const char *override[] = {"server_name_indication", "wrong-host.example", NULL};
	const char *disabled[] = {"server_name_indication", "disable", NULL};
	int rc;

	/* A name: sent. The handshake completes; the server then hangs up after the header. */
	sni_sent("server", "localhost", NULL, "localhost");

	/* An address: not sent, and the address is what is verified. */
	sni_sent("server", "127.0.0.1", NULL, "");

	/* An override: sent, and the certificate checked against it. */
	sni_sent("wrong-host", "localhost", override, "wrong-host.example");

	/* Disabled: not sent, and the host still checked (so wrong-host fails). */
	sni_sent("server", "localhost", disabled, "");
	sv = server_start("wrong-host", 0);
	p = params_local("localhost", sv->port, disabled);
	rc = sv_connect(&p, &s, &e);
	server_finish(sv);
	expect(rc, &e, SALVO_ERR_TLS, "hostname mismatch");
	CHECK(!strcmp(sv->sni, ""));
	free(sv);
	return 0;
}

/* Count the lines of a file holding needle. */
static int count_in_file(FILE *f, const char *needle)
{
	char line[512];
	int n = 0;

	rewind(f);
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	return n;
}

/* The broker's certificate is not in the system store: refused by default, accepted with
 * verify_none, which warns on stderr once per process. */
static int case_verify_none(void)
{
	const char *store[] = {"cacertfile", "", NULL};
	const char *none[] = {"cacertfile", "", "verify", "verify_none", NULL};
	const char *warning = "TLS peer verification is disabled";
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;
	FILE *log = tmpfile();
	int saved = dup(2);

	if (!tls_uri())
		return SKIP;
	CHECK(log && saved >= 0);
	p = params_from(tls_uri(), store);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TLS,
	       "certificate verify failed: self-signed certificate in certificate chain");

	fflush(stderr);
	CHECK(dup2(fileno(log), 2) == 2);
	p = params_from(tls_uri(), none);
	connect_and_close(&p);
	connect_and_close(&p);
	fflush(stderr);
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	printf("  warnings printed: %d\n", count_in_file(log, warning));
	CHECK(count_in_file(log, warning) == 1);
	fclose(log);
	return 0;
}

/* Client certificate + EXTERNAL: the broker logs in salvo-client from the certificate, so
 * the (wrong) password does not matter; with PLAIN the same parameters are refused. */
static int case_external(void)
{
	const char *ext[] = {"certfile",	 cert("client.pem"), "keyfile",
			     cert("client.key"), "auth_mechanism",   "external",
			     "password",	 BOGUS_PASSWORD,     NULL};
	const char *plain[] = {"certfile", cert("client.pem"), "keyfile", cert("client.key"),
			       "password", BOGUS_PASSWORD,     NULL};
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;
	int rc;

	if (!tls_uri())
		return SKIP;
	p = params_from(tls_uri(), plain);
	rc = sv_connect(&p, &s, &e);
	show(rc, &e);
	CHECK(rc == 403);

	p = params_from(tls_uri(), ext);
	CHECK(p.auth == SV_AUTH_EXTERNAL);
	connect_and_close(&p);
	return 0;
}

/* EXTERNAL needs TLS and a certificate; refused before any network. */
static int case_external_refusals(void)
{
	const char *no_cert[] = {"auth_mechanism", "external", NULL};
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;

	p = params_local("127.0.0.1", 1, no_cert);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_INVALID_ARGUMENT,
	       "auth_mechanism=external needs an amqps:// endpoint and a certfile");
	p = params_from("amqp://127.0.0.1:1", (const char *[]){"certfile", cert("client.pem"),
							       "auth_mechanism", "external", NULL});
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_INVALID_ARGUMENT,
	       "auth_mechanism=external needs an amqps:// endpoint and a certfile");
	return 0;
}

/* Files that do not load: SALVO_ERR_TLS naming the file, before any network (port 1). */
static int case_bad_files(void)
{
	const char *no_ca[] = {"cacertfile", "/nonexistent/ca.pem", NULL};
	const char *no_key[] = {"certfile", cert("client.pem"), "keyfile", cert("server.key"),
				NULL};
	const char *key_only[] = {"keyfile", cert("client.key"), NULL};
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;

	p = params_from("amqps://127.0.0.1:1", no_ca);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TLS,
	       "cacertfile /nonexistent/ca.pem: No such file or directory");
	p = params_local("127.0.0.1", 1, no_key);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TLS, "key values mismatch");
	p = params_local("127.0.0.1", 1, key_only);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_INVALID_ARGUMENT,
	       "keyfile is set but certfile is not");
	return 0;
}

/* The two halves of "nothing sent in clear". A refused server (TLS 1.2 here, so every
 * record type is visible) saw only handshake and alert records: no application data before
 * verification. An accepted one saw a ClientHello first and the AMQP header only inside
 * TLS. */
static int case_nothing_in_clear(void)
{
	struct server *sv = server_start("unknown-ca", TLS1_2_VERSION);
	struct sv_connect_params p = params_local("localhost", sv->port, NULL);
	struct sv_session s;
	salvo_error e;
	size_t records = 0;
	uint8_t last = 0;
	int rc = sv_connect(&p, &s, &e);

	server_finish(sv);
	expect(rc, &e, SALVO_ERR_TLS, "unable to get local issuer certificate");
	check_no_clear_text(sv);
	for (size_t at = 0; at + 5 <= sv->raw_len; records++) {
		uint8_t type = sv->raw[at];

		printf("  record type %u, %u bytes\n", type,
		       sv->raw[at + 3] << 8 | sv->raw[at + 4]);
		CHECK(type == 0x16 || type == 0x15); /* handshake, alert: no 0x17 data */
		last = type;
		at += 5 + (size_t)(sv->raw[at + 3] << 8 | sv->raw[at + 4]);
		CHECK(at <= sv->raw_len);
	}
	CHECK(records >= 2 && last == 0x15); /* the ClientHello ... the refusal's alert */
	free(sv);

	sv = server_start("server", 0);
	p = params_local("localhost", sv->port, NULL);
	rc = sv_connect(&p, &s, &e);
	server_finish(sv);
	show(rc, &e);
	CHECK(rc == SALVO_ERR_IO);
	CHECK(sv->handshake_done);
	check_no_clear_text(sv);
	CHECK(sv->plain_len == 8 && !memcmp(sv->plain, "AMQP\0\0\x09\x01", 8));
	free(sv);
	return 0;
}

/* amqps:// to a plain AMQP port: the broker's protocol header comes back, named as such. */
static int case_plain_port(void)
{
	const char *plain = getenv("SALVO_TEST_URI");
	const char *port = plain ? strrchr(plain, ':') : NULL;
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error e;

	if (!port)
		return SKIP;
	p = params_local("127.0.0.1", (uint16_t)atoi(port + 1), NULL);
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TLS, "answered in plain AMQP");
	return 0;
}

/* A server that accepts TCP and never answers the ClientHello: the deadline holds. */
static int case_silent_server(void)
{
	uint16_t port;
	int fd = listen_loopback(&port);
	struct sv_connect_params p = params_local("127.0.0.1", port, NULL);
	struct sv_session s;
	salvo_error e;

	p.timeout_ms = 300;
	expect(sv_connect(&p, &s, &e), &e, SALVO_ERR_TIMEOUT,
	       "timed out after 300 ms during the TLS handshake");
	close(fd);
	return 0;
}

/*
 * sv_tls_write packs small pieces into full records: 1,000 messages of 100 bytes and one of
 * 40,000 become 9 records of at most 16 KiB (140,000 / 16,384), not 1,001. Client and
 * server run in this thread over memory; the server decrypts and compares.
 */
static int case_batching(void)
{
	struct sv_tls_settings set = {.cacertfile = cert("ca.pem")};
	struct server cfg = {.cert = cert("server.pem"), .key = cert("server.key")};
	SSL_CTX *ctx = server_ctx(&cfg);
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	static uint8_t msgs[1000][100], big[40000], cipher[1 << 20], plain[200000];
	struct iovec iov[1001];
	struct sv_tls *t;
	salvo_error e;
	size_t n, taken, records = 0, got = 0;
	int rc;

	CHECK(ssl && rbio && wbio);
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_accept_state(ssl);
	CHECK(sv_tls_new(&set, "localhost", "localhost:0", &t, &e) == 0);
	while ((rc = sv_tls_handshake(t, &e)) == SV_TLS_WANT_READ) {
		n = sv_tls_take(t, cipher, sizeof cipher);
		CHECK(BIO_write(rbio, cipher, (int)n) == (int)n);
		SSL_do_handshake(ssl);
		n = (size_t)BIO_read(wbio, cipher, sizeof cipher);
		CHECK(sv_tls_feed(t, cipher, n) == 0);
	}
	CHECK(rc == 0);
	n = sv_tls_take(t, cipher, sizeof cipher); /* the client's Finished */
	CHECK(BIO_write(rbio, cipher, (int)n) == (int)n);
	CHECK(SSL_do_handshake(ssl) == 1);
	(void)!BIO_read(wbio, cipher, sizeof cipher); /* session tickets, not needed */

	for (int i = 0; i < 1000; i++) {
		memset(msgs[i], 'a' + i % 26, sizeof msgs[i]);
		iov[i] = (struct iovec){msgs[i], sizeof msgs[i]};
	}
	memset(big, 'Z', sizeof big);
	iov[1000] = (struct iovec){big, sizeof big};
	CHECK(sv_tls_write(t, iov, 1001, SIZE_MAX, &taken, &e) == 0);
	CHECK(taken == 140000);
	n = sv_tls_take(t, cipher, sizeof cipher);
	CHECK(sv_tls_pending(t) == 0);
	for (size_t at = 0; at + 5 <= n; records++) {
		CHECK(cipher[at] == 0x17);
		at += 5 + (size_t)(cipher[at + 3] << 8 | cipher[at + 4]);
		CHECK(at <= n);
	}
	printf("  140000 bytes in 1001 pieces: %zu records, %zu bytes of ciphertext\n", records, n);
	CHECK(records == 9);
	CHECK(BIO_write(rbio, cipher, (int)n) == (int)n);
	while (SSL_read_ex(ssl, plain + got, sizeof plain - got, &n) == 1)
		got += n;
	CHECK(got == 140000);
	for (int i = 0; i < 1000; i++)
		CHECK(!memcmp(plain + i * 100, msgs[i], 100));
	CHECK(!memcmp(plain + 100000, big, sizeof big));

	/* max bounds what is taken, in the middle of a piece. */
	CHECK(sv_tls_write(t, iov, 1001, 250, &taken, &e) == 0);
	CHECK(taken == 250);
	CHECK(sv_tls_pending(t) > 250);
	sv_tls_free(t);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return 0;
}

/* Client level: the data path, TLS records carried by the io_uring I/O thread. */

/* A client of the amqps URI with extra configuration keys (key, value, ..., NULL). */
static int client_new(const char *uri, const char *const *kv, salvo_client **out, salvo_error *e)
{
	salvo_conf *conf = salvo_conf_new();
	char errstr[256];
	int rc;

	CHECK(conf);
	if (salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "uri: %s\n", errstr);
		exit(1);
	}
	for (; kv && kv[0]; kv += 2)
		if (salvo_conf_set(conf, kv[0], kv[1], errstr, sizeof errstr)) {
			fprintf(stderr, "%s: %s\n", kv[0], errstr);
			exit(1);
		}
	rc = salvo_client_new(conf, out, e);
	salvo_conf_destroy(conf);
	return rc;
}

static void must(int rc, const salvo_error *e, const char *what)
{
	if (rc) {
		fprintf(stderr, "%s: %d %s\n", what, rc, e->text);
		exit(1);
	}
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * 100,000 messages over amqps with async confirms (window 4096): every one acked, and the
 * queue holds exactly 100,000. The I/O thread encrypts each batch it gathers into 16 KiB
 * records and decrypts the broker's acks.
 */
#define TLS_Q "salvo.test.tls.confirm"
#define TLS_N 100000

static int case_client_confirm(void)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 4096};
	salvo_queue_info info;
	salvo_pub_stats st;
	salvo_client *c;
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_error e;
	struct timespec t0;
	uint8_t body[100];
	double secs;

	if (!tls_uri())
		return SKIP;
	must(client_new(tls_uri(), NULL, &c, &e), &e, "salvo_client_new");
	must(salvo_channel_open(c, &ch, &e), &e, "channel");
	must(salvo_queue_delete(ch, TLS_Q, 0, NULL, &e), &e, "queue.delete");
	must(salvo_queue_declare(ch, TLS_Q, 0, NULL, NULL, &e), &e, "queue.declare");
	must(salvo_publisher_new(c, &opts, &p, &e), &e, "publisher");
	memset(body, 'x', sizeof body);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < TLS_N; i++) {
		memcpy(body, &i, sizeof i);
		must(salvo_publish(p, "", TLS_Q, body, sizeof body, 0, 60000, &e), &e, "publish");
	}
	must(salvo_publisher_wait_confirms(p, 120000, &e), &e, "wait_confirms");
	secs = seconds_since(&t0);
	salvo_publisher_stats(p, &st);
	printf("  amqps: published %llu, acked %llu, nacked %llu, failed %llu in %.2f s "
	       "(%.0f msgs/s)\n",
	       (unsigned long long)st.published, (unsigned long long)st.acked,
	       (unsigned long long)st.nacked, (unsigned long long)st.failed, secs, TLS_N / secs);
	CHECK(st.published == TLS_N && st.acked == TLS_N && st.in_flight == 0);
	must(salvo_publisher_close(p, 10000, &e), &e, "publisher close");
	must(salvo_queue_declare(ch, TLS_Q, SALVO_PASSIVE, NULL, &info, &e), &e, "passive declare");
	printf("  queue %s holds %u messages\n", TLS_Q, info.message_count);
	CHECK(info.message_count == TLS_N);
	/* And back through TLS: the first message, byte for byte. */
	{
		salvo_message *m;
		const uint8_t *b;
		size_t len;
		uint32_t first;

		must(salvo_basic_get(ch, TLS_Q, true, &m, &e), &e, "basic.get");
		CHECK(m);
		b = salvo_message_body(m, &len);
		memcpy(&first, b, sizeof first);
		CHECK(len == sizeof body && first == 0 && b[99] == 'x');
		salvo_message_destroy(m);
	}
	must(salvo_queue_delete(ch, TLS_Q, 0, NULL, &e), &e, "queue.delete");
	must(salvo_channel_close(ch, &e), &e, "channel close");
	must(salvo_client_close(c, 5000, &e), &e, "client close");
	salvo_client_destroy(c);
	return 0;
}

/*
 * Consuming over amqps with a small consumer.buffer_bytes (256 KiB): 20,000 messages of
 * 1 KiB published (confirmed), a no_ack consumer left undrained for a second, so the I/O
 * thread must stop decrypting and reading at the bound, then everything drained: every
 * message once, in order, the peak buffered within the bound plus one message.
 */
#define TLS_CQ "salvo.test.tls.consume"
#define TLS_CN 20000

static int case_client_consume(void)
{
	const char *kv[] = {"consumer.buffer_bytes", "262144", NULL};
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 4096};
	salvo_consumer_opts copts = {.flags = SALVO_CONSUME_NO_ACK};
	salvo_consume_stats cs;
	salvo_client *c;
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_consumer *cons;
	salvo_error e;
	uint8_t body[1024];

	if (!tls_uri())
		return SKIP;
	must(client_new(tls_uri(), kv, &c, &e), &e, "salvo_client_new");
	must(salvo_channel_open(c, &ch, &e), &e, "channel");
	must(salvo_queue_delete(ch, TLS_CQ, 0, NULL, &e), &e, "queue.delete");
	must(salvo_queue_declare(ch, TLS_CQ, 0, NULL, NULL, &e), &e, "queue.declare");
	must(salvo_publisher_new(c, &opts, &p, &e), &e, "publisher");
	memset(body, 'c', sizeof body);
	for (uint32_t i = 0; i < TLS_CN; i++) {
		memcpy(body, &i, sizeof i);
		must(salvo_publish(p, "", TLS_CQ, body, sizeof body, 0, 60000, &e), &e, "publish");
	}
	must(salvo_publisher_wait_confirms(p, 60000, &e), &e, "wait_confirms");
	must(salvo_publisher_close(p, 10000, &e), &e, "publisher close");
	must(salvo_consume(ch, TLS_CQ, &copts, &cons, &e), &e, "basic.consume");
	usleep(1000 * 1000);
	salvo_client_consume_stats(c, &cs);
	printf("  undrained for 1 s: %llu bytes buffered (peak %llu), reads held %llu times\n",
	       (unsigned long long)cs.buffered_bytes, (unsigned long long)cs.buffered_peak,
	       (unsigned long long)cs.read_holds);
	CHECK(cs.read_holds >= 1);
	for (uint32_t i = 0; i < TLS_CN; i++) {
		salvo_message *m;
		const uint8_t *b;
		size_t len;
		uint32_t n;

		must(salvo_consumer_get(cons, 10000, &m, &e), &e, "consumer get");
		b = salvo_message_body(m, &len);
		memcpy(&n, b, sizeof n);
		CHECK(len == sizeof body && n == i && b[len - 1] == 'c');
		salvo_message_destroy(m);
	}
	salvo_client_consume_stats(c, &cs);
	printf("  %u messages consumed over amqps, in order; peak buffered %llu bytes\n", TLS_CN,
	       (unsigned long long)cs.buffered_peak);
	CHECK(cs.buffered_peak <= 262144 + 2048);
	salvo_consumer_destroy(cons);
	must(salvo_queue_delete(ch, TLS_CQ, 0, NULL, &e), &e, "queue.delete");
	must(salvo_channel_close(ch, &e), &e, "channel close");
	must(salvo_client_close(c, 5000, &e), &e, "client close");
	salvo_client_destroy(c);
	return 0;
}

/*
 * Client certificate + SASL EXTERNAL through salvo_client_new, with a password that is
 * wrong on purpose: the broker logs in salvo-client from the certificate, and a sync
 * publish round trip works; the same client with PLAIN is refused (403), once.
 */
static int case_client_external(void)
{
	const char *ext[] = {"certfile", cert("client.pem"), "keyfile", cert("client.key"),
			     "auth_mechanism", "external", "password", BOGUS_PASSWORD, NULL};
	const char *plain[] = {"certfile", cert("client.pem"), "keyfile", cert("client.key"),
			       "password", BOGUS_PASSWORD, NULL};
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_queue_info info;
	salvo_client *c;
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_error e;
	int rc;

	if (!tls_uri())
		return SKIP;
	rc = client_new(tls_uri(), plain, &c, &e);
	show(rc, &e);
	CHECK(rc == 403);

	must(client_new(tls_uri(), ext, &c, &e), &e, "salvo_client_new (EXTERNAL)");
	must(salvo_channel_open(c, &ch, &e), &e, "channel");
	must(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &info, &e), &e, "queue.declare");
	must(salvo_publisher_new(c, &opts, &p, &e), &e, "publisher");
	for (int i = 0; i < 100; i++)
		must(salvo_publish(p, "", info.name, "hello", 5, 0, 10000, &e), &e, "sync publish");
	must(salvo_publisher_close(p, 10000, &e), &e, "publisher close");
	must(salvo_queue_declare(ch, info.name, SALVO_PASSIVE, NULL, &info, &e), &e, "passive");
	printf("  EXTERNAL: 100 sync publishes acked, queue %s holds %u\n", info.name,
	       info.message_count);
	CHECK(info.message_count == 100);
	must(salvo_channel_close(ch, &e), &e, "channel close");
	must(salvo_client_close(c, 5000, &e), &e, "client close");
	salvo_client_destroy(c);
	return 0;
}

/*
 * A refusal through salvo_client_new, automatic reconnection on (the default): one clear
 * TLS error at once, one connection attempt (none waits behind it in the listen queue),
 * nothing in clear.
 */
static int case_client_refusal(void)
{
	struct server *sv = server_start("expired", 0);
	struct pollfd pfd;
	char uri[512];
	salvo_client *c = NULL;
	salvo_error e;
	struct timespec t0;
	int rc;

	snprintf(uri, sizeof uri, "amqps://guest:guest@localhost:%u?cacertfile=%s", sv->port,
		 cert("ca.pem"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = client_new(uri, NULL, &c, &e);
	printf("  salvo_client_new returned after %.3f s\n", seconds_since(&t0));
	CHECK(pthread_join(sv->thread, NULL) == 0);
	usleep(300 * 1000);
	pfd = (struct pollfd){sv->listen_fd, POLLIN, 0};
	CHECK(poll(&pfd, 1, 0) == 0); /* no second attempt */
	close(sv->listen_fd);
	expect(rc, &e, SALVO_ERR_TLS, "certificate verify failed: certificate has expired");
	CHECK(c == NULL);
	check_no_clear_text(sv);
	CHECK(!sv->handshake_done && sv->plain_len == 0);
	free(sv);

	/* A failover list that mixes schemes could drop TLS on a reconnection: refused. */
	rc = client_new(uri, (const char *[]){"uri.add", "amqp://127.0.0.1:1", NULL}, &c, &e);
	expect(rc, &e, SALVO_ERR_INVALID_ARGUMENT, "the endpoints mix amqp:// and amqps://");
	return 0;
}

static const struct test_case cases[] = {
    {"handshake", .run_status = case_handshake},
    {"handshake-ip", .run_status = case_handshake_ip},
    {"unknown-ca", .run_status = case_unknown_ca},
    {"unknown-ca-broker", .run_status = case_unknown_ca_broker},
    {"wrong-host", .run_status = case_wrong_host},
    {"wrong-ip", .run_status = case_wrong_ip},
    {"expired", .run_status = case_expired},
    {"tls11-server", .run_status = case_tls11_server},
    {"sni", .run_status = case_sni},
    {"verify-none", .run_status = case_verify_none},
    {"external", .run_status = case_external},
    {"external-refusals", .run_status = case_external_refusals},
    {"bad-files", .run_status = case_bad_files},
    {"nothing-in-clear", .run_status = case_nothing_in_clear},
    {"plain-port", .run_status = case_plain_port},
    {"silent-server", .run_status = case_silent_server},
    {"batching", .run_status = case_batching},
    {"client-confirm", .run_status = case_client_confirm},
    {"client-consume", .run_status = case_client_consume},
    {"client-external", .run_status = case_client_external},
    {"client-refusal", .run_status = case_client_refusal},
};

/* Every case needs the certificates of scripts/tls.sh. */
static int need_certificates(void)
{
	tls_dir = getenv("SALVO_TEST_TLS_DIR");
	if (tls_dir)
		return 0;
	printf("SALVO_TEST_TLS_DIR is not set: skipped\n");
	return SKIP;
}

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], need_certificates,
			 NULL);
}
