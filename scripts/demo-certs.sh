#!/usr/bin/env bash
# Throwaway certificates for `mailfront demo`, made with the openssl CLI: a CA
# (root + intermediate, ECDSA P-256) and one leaf per lineage, laid out like
# certbot's folder (live/<lineage>/*.pem are relative symlinks into
# archive/<lineage>/*1.pem), so mailfront reads them as it reads Let's Encrypt's.
#
#   demo-certs.sh DIR LINEAGE=NAME[,NAME...] ...
#
# Writes DIR/ca.pem (the root to trust), DIR/ca/ (the CA's keys) and
# DIR/letsencrypt/{live,archive,renewal}. Leaves last 90 days, like Let's
# Encrypt's. The tests make theirs with test/helpers/pki.ts.
set -euo pipefail

die() { echo "demo-certs.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: demo-certs.sh DIR LINEAGE=NAME[,NAME...] ..."
command -v openssl >/dev/null || die "openssl not found: run scripts/install-deps.sh"
DIR="$1"; shift
CA="$DIR/ca"
LE="$DIR/letsencrypt"
umask 077
mkdir -p "$CA" "$LE/live" "$LE/archive" "$LE/renewal"

ossl() { openssl "$@" 2>"$CA/openssl.err" || die "openssl $1 failed: $(cat "$CA/openssl.err")"; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

cat >"$CA/ext.cnf" <<'EOF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
key "$CA/root.key"
ossl req -x509 -new -key "$CA/root.key" -out "$CA/root.pem" -days 3650 -subj "/O=mailfront demo/CN=mailfront demo root" \
  -config "$CA/ext.cnf" -extensions root -set_serial 1
key "$CA/intermediate.key"
ossl req -new -key "$CA/intermediate.key" -out "$CA/intermediate.csr" -subj "/O=mailfront demo/CN=mailfront demo intermediate"
ossl x509 -req -in "$CA/intermediate.csr" -CA "$CA/root.pem" -CAkey "$CA/root.key" -set_serial 2 -days 1825 \
  -extfile "$CA/ext.cnf" -extensions intermediate -out "$CA/intermediate.pem"
install -m 644 "$CA/root.pem" "$DIR/ca.pem"

serial=16
for spec in "$@"; do
  lineage="${spec%%=*}"; names="${spec#*=}"
  [[ "$lineage" =~ ^[A-Za-z0-9._-]+$ && "$names" != "$spec" && -n "$names" ]] || die "bad lineage \"$spec\": want LINEAGE=NAME[,NAME...]"
  archive="$LE/archive/$lineage"; live="$LE/live/$lineage"
  mkdir -p "$archive" "$live"
  san="$(echo "$names" | sed 's/^/DNS:/; s/,/, DNS:/g')"
  printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
    'extendedKeyUsage = serverAuth' 'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid:always' \
    "subjectAltName = $san" >"$CA/leaf.cnf"
  key "$archive/privkey1.pem"
  ossl req -new -key "$archive/privkey1.pem" -out "$CA/leaf.csr" -subj "/CN=${names%%,*}"
  ossl x509 -req -in "$CA/leaf.csr" -CA "$CA/intermediate.pem" -CAkey "$CA/intermediate.key" -set_serial $((serial++)) \
    -days 90 -extfile "$CA/leaf.cnf" -out "$archive/cert1.pem"
  cp "$CA/intermediate.pem" "$archive/chain1.pem"
  cat "$archive/cert1.pem" "$archive/chain1.pem" >"$archive/fullchain1.pem"
  chmod 644 "$archive/cert1.pem" "$archive/chain1.pem" "$archive/fullchain1.pem"
  for f in cert chain fullchain privkey; do ln -sfn "../../archive/$lineage/${f}1.pem" "$live/$f.pem"; done
  printf '# renew_before_expiry = 30 days\nversion = 2.0.0\n' >"$LE/renewal/$lineage.conf"
done
rm -f "$CA"/*.csr "$CA/leaf.cnf" "$CA/openssl.err"
