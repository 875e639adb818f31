#!/usr/bin/env bash
# Throwaway certificates for salvo's TLS tests, made with the openssl CLI.
#
#   scripts/tls.sh DIR     create DIR (if needed) and write into it:
#
#   ca.pem                 the test CA (ca.key: its key), which tests trust
#   server.pem/.key        CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by the CA
#   client.pem/.key        CN=salvo-client (clientAuth), signed by the CA: SASL EXTERNAL
#   expired.pem/.key       like server.pem, but valid only in 2020
#   wrong-host.pem/.key    SAN DNS:wrong-host.example only, signed by the CA
#   other-ca.pem/.key      a second CA that tests do not trust
#   unknown-ca.pem/.key    like server.pem, but signed by other-ca
#
# Keys are EC P-256, unencrypted, mode 600. Nothing here is secret or reused: every run
# makes new keys. Existing files in DIR are overwritten.
set -euo pipefail

die() { printf 'tls.sh: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 DIR"
dir=$1
mkdir -p -- "$dir"
dir=$(cd -- "$dir" && pwd)
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# ca NAME CN: a self-signed CA certificate.
ca() {
	key "$1"
	openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 30 -subj "/O=salvo tests/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf NAME CN SAN EKU CA [START END]: a certificate signed by CA (ca or other-ca); START
# and END (YYYYMMDDHHMMSSZ) give a fixed validity, else 30 days from now.
leaf() {
	local name=$1 cn=$2 san=$3 eku=$4 signer=$5 start=${6:-} end=${7:-}
	key "$name"
	openssl req -new -key "$name.key" -out "$name.csr" -subj "/O=salvo tests/CN=$cn"
	cat >"$name.ext" <<-EOF
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = $eku
		${san:+subjectAltName = $san}
	EOF
	if [[ -z $start ]]; then
		openssl x509 -req -in "$name.csr" -CA "$signer.pem" -CAkey "$signer.key" \
			-CAcreateserial -days 30 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
	else
		# x509 -req cannot backdate; "openssl ca" can, given a throwaway database.
		mkdir -p ca-db
		: >ca-db/index.txt
		openssl rand -hex 16 >ca-db/serial
		cat >ca-db/ca.cnf <<-EOF
			[ca]
			default_ca = test
			[test]
			database = $dir/ca-db/index.txt
			serial = $dir/ca-db/serial
			new_certs_dir = $dir/ca-db
			default_md = sha256
			policy = any
			copy_extensions = none
			[any]
			commonName = supplied
			organizationName = optional
		EOF
		openssl ca -batch -notext -config ca-db/ca.cnf -cert "$signer.pem" \
			-keyfile "$signer.key" -startdate "$start" -enddate "$end" \
			-extfile "$name.ext" -in "$name.csr" -out "$name.pem" 2>/dev/null
		rm -rf ca-db
	fi
	rm -f "$name.csr" "$name.ext"
}

ca ca "salvo test CA"
ca other-ca "salvo unknown CA"
leaf server localhost "DNS:localhost, IP:127.0.0.1" serverAuth ca
leaf client salvo-client "" clientAuth ca
leaf expired localhost "DNS:localhost, IP:127.0.0.1" serverAuth ca 20200101000000Z 20201231000000Z
leaf wrong-host wrong-host.example "DNS:wrong-host.example" serverAuth ca
leaf unknown-ca localhost "DNS:localhost, IP:127.0.0.1" serverAuth other-ca
rm -f ./*.srl
# The broker (same user) and the tests read the keys; nobody else needs to.
chmod 600 ./*.key
chmod 644 ./*.pem

# Each certificate must be what its name says, or the tests would prove nothing.
openssl verify -CAfile ca.pem server.pem client.pem wrong-host.pem >/dev/null
openssl verify -CAfile ca.pem unknown-ca.pem >/dev/null 2>&1 && die "unknown-ca.pem verifies against ca.pem"
openssl verify -CAfile other-ca.pem unknown-ca.pem >/dev/null
openssl x509 -in expired.pem -noout -checkend 0 >/dev/null && die "expired.pem has not expired"
printf 'tls.sh: certificates in %s\n' "$dir" >&2
