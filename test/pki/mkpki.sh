#!/usr/bin/env bash
# mkpki.sh OUTDIR - generate the sechan test PKI (gnutls certtool/psktool).
#
# Layout (QEMU x509 directory layout where it applies):
#   OUTDIR/pki/            ca-cert.pem ca-crl.pem server-{cert,key}.pem client-{cert,key}.pem
#                          (server: CN/SAN localhost, IP 127.0.0.1 and ::1; client: CN client)
#   OUTDIR/pki-caonly/     ca-cert.pem
#   OUTDIR/pki-wronghost/  ca-cert.pem server-{cert,key}.pem  (CN/SAN "wronghost" only)
#   OUTDIR/pki-revoked/    ca-cert.pem ca-crl.pem server-{cert,key}.pem (localhost, revoked)
#   OUTDIR/pki-otherca/    ca-cert.pem server-{cert,key}.pem client-{cert,key}.pem
#                          (a second, unrelated CA)
#   OUTDIR/pki-ecdsa/      as pki/ but every key is ECDSA P-256 (own CA, no CRL)
#   OUTDIR/ca-private/     CA keys and the certtool templates used (not needed by peers)
#   OUTDIR/keys.psk, OUTDIR/psk/keys.psk   alice:<64 hex>
#   OUTDIR/keys-wrong.psk                  alice:<another 64 hex>
#   OUTDIR/keys-multi.psk                  alice (same key as keys.psk) and bob
#
# Idempotent: exits at once when OUTDIR/.done exists; .done is written last.
# Concurrent invocations on the same OUTDIR serialise on OUTDIR/.lock (flock).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1

[ -e "$OUT/.done" ] && exit 0

for prog in certtool psktool; do
    command -v "$prog" >/dev/null 2>&1 || { echo "mkpki.sh: $prog not found (apt-get install gnutls-bin)" >&2; exit 1; }
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
    [ -e "$OUT/.done" ] && exit 0
fi

umask 077
export TZ=UTC LC_ALL=C

# Dates in the past so that a small clock difference never makes anything "not yet valid".
PAST=$(date -u -d '2 days ago' '+%Y-%m-%d %H:%M:%S')
FUTURE=$(date -u -d '3650 days' '+%Y-%m-%d %H:%M:%S')

P=$OUT/ca-private
rm -rf "$OUT/pki" "$OUT/pki-caonly" "$OUT/pki-wronghost" "$OUT/pki-revoked" \
       "$OUT/pki-otherca" "$OUT/pki-ecdsa" "$OUT/psk" "$P"
mkdir -p "$OUT/pki" "$OUT/pki-caonly" "$OUT/pki-wronghost" "$OUT/pki-revoked" \
         "$OUT/pki-otherca" "$OUT/pki-ecdsa" "$OUT/psk" "$P"

# genkey rsa|ecdsa FILE : PEM private key without certtool's text preamble.
genkey() {
    local kind=$1 file=$2
    if [ "$kind" = rsa ]; then
        certtool --generate-privkey --key-type=rsa --bits=2048 2>/dev/null
    else
        certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 2>/dev/null
    fi | sed -n '/BEGIN/,/END/p' > "$file"
    chmod 600 "$file"
    grep -q 'END' "$file" || { echo "mkpki.sh: key generation failed for $file" >&2; exit 1; }
}

# Templates.  "signing_key" = digitalSignature, "encryption_key" = keyEncipherment
# (only meaningful for RSA key exchange, so left out for ECDSA).
ca_tmpl() { # CN
    printf 'cn = "%s"\norganization = "sechan test"\nca\ncert_signing_key\ncrl_signing_key\nactivation_date = "%s"\nexpiration_date = "%s"\n' \
        "$1" "$PAST" "$FUTURE"
}
server_tmpl() { # CN KEYUSAGE-LINES SAN-LINES
    printf 'organization = "sechan test"\ncn = "%s"\n%b%btls_www_server\nactivation_date = "%s"\nexpiration_date = "%s"\n' \
        "$1" "$3" "$2" "$PAST" "$FUTURE"
}
client_tmpl() { # CN KEYUSAGE-LINES
    printf 'organization = "sechan test"\ncn = "%s"\n%btls_www_client\nactivation_date = "%s"\nexpiration_date = "%s"\n' \
        "$1" "$2" "$PAST" "$FUTURE"
}
RSA_KU='signing_key\nencryption_key\n'
EC_KU='signing_key\n'
SAN_LOCAL='dns_name = "localhost"\nip_address = "127.0.0.1"\nip_address = "::1"\n'

selfsign() { # KEY TEMPLATE OUT
    certtool --generate-self-signed --load-privkey "$1" --template "$2" --outfile "$3" >/dev/null 2>&1
}
issue() { # CAKEY CACERT KEY TEMPLATE OUT
    certtool --generate-certificate --load-ca-privkey "$1" --load-ca-certificate "$2" \
        --load-privkey "$3" --template "$4" --outfile "$5" >/dev/null 2>&1
}

# --- Keys (generated in parallel: 9 RSA + 3 ECDSA, ~40 ms each) --------------------------
pids=()
genkey rsa "$P/ca-key.pem" & pids+=($!)
genkey rsa "$OUT/pki/server-key.pem" & pids+=($!)
genkey rsa "$OUT/pki/client-key.pem" & pids+=($!)
genkey rsa "$OUT/pki-wronghost/server-key.pem" & pids+=($!)
genkey rsa "$OUT/pki-revoked/server-key.pem" & pids+=($!)
genkey rsa "$P/otherca-key.pem" & pids+=($!)
genkey rsa "$OUT/pki-otherca/server-key.pem" & pids+=($!)
genkey rsa "$OUT/pki-otherca/client-key.pem" & pids+=($!)
genkey ecdsa "$P/ecdsa-ca-key.pem" & pids+=($!)
genkey ecdsa "$OUT/pki-ecdsa/server-key.pem" & pids+=($!)
genkey ecdsa "$OUT/pki-ecdsa/client-key.pem" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done

# --- Main CA -----------------------------------------------------------------------------
ca_tmpl "sechan test CA" > "$P/ca.info"
selfsign "$P/ca-key.pem" "$P/ca.info" "$OUT/pki/ca-cert.pem"

server_tmpl localhost "$RSA_KU" "$SAN_LOCAL" > "$P/server.info"
issue "$P/ca-key.pem" "$OUT/pki/ca-cert.pem" "$OUT/pki/server-key.pem" "$P/server.info" "$OUT/pki/server-cert.pem"

client_tmpl client "$RSA_KU" > "$P/client.info"
issue "$P/ca-key.pem" "$OUT/pki/ca-cert.pem" "$OUT/pki/client-key.pem" "$P/client.info" "$OUT/pki/client-cert.pem"

server_tmpl wronghost "$RSA_KU" 'dns_name = "wronghost"\n' > "$P/wronghost.info"
issue "$P/ca-key.pem" "$OUT/pki/ca-cert.pem" "$OUT/pki-wronghost/server-key.pem" "$P/wronghost.info" \
    "$OUT/pki-wronghost/server-cert.pem"

issue "$P/ca-key.pem" "$OUT/pki/ca-cert.pem" "$OUT/pki-revoked/server-key.pem" "$P/server.info" \
    "$OUT/pki-revoked/server-cert.pem"

# CRL revoking pki-revoked/server-cert.pem; thisUpdate and revocation date in the past.
printf 'crl_number = 1\ncrl_this_update_date = "%s"\ncrl_next_update_date = "%s"\ncrl_revocation_date = "%s"\n' \
    "$PAST" "$FUTURE" "$PAST" > "$P/crl.info"
certtool --generate-crl --load-ca-privkey "$P/ca-key.pem" --load-ca-certificate "$OUT/pki/ca-cert.pem" \
    --load-certificate "$OUT/pki-revoked/server-cert.pem" --template "$P/crl.info" \
    --outfile "$P/ca-crl.full.pem" >/dev/null 2>&1
sed -n '/BEGIN/,/END/p' "$P/ca-crl.full.pem" > "$OUT/pki/ca-crl.pem"

for d in pki-caonly pki-wronghost pki-revoked; do cp "$OUT/pki/ca-cert.pem" "$OUT/$d/ca-cert.pem"; done
cp "$OUT/pki/ca-crl.pem" "$OUT/pki-revoked/ca-crl.pem"

# --- Unrelated second CA -------------------------------------------------------------------
ca_tmpl "sechan other test CA" > "$P/otherca.info"
selfsign "$P/otherca-key.pem" "$P/otherca.info" "$OUT/pki-otherca/ca-cert.pem"
issue "$P/otherca-key.pem" "$OUT/pki-otherca/ca-cert.pem" "$OUT/pki-otherca/server-key.pem" "$P/server.info" \
    "$OUT/pki-otherca/server-cert.pem"
issue "$P/otherca-key.pem" "$OUT/pki-otherca/ca-cert.pem" "$OUT/pki-otherca/client-key.pem" "$P/client.info" \
    "$OUT/pki-otherca/client-cert.pem"

# --- ECDSA P-256 ---------------------------------------------------------------------------
ca_tmpl "sechan ECDSA test CA" > "$P/ecdsa-ca.info"
selfsign "$P/ecdsa-ca-key.pem" "$P/ecdsa-ca.info" "$OUT/pki-ecdsa/ca-cert.pem"
server_tmpl localhost "$EC_KU" "$SAN_LOCAL" > "$P/ecdsa-server.info"
issue "$P/ecdsa-ca-key.pem" "$OUT/pki-ecdsa/ca-cert.pem" "$OUT/pki-ecdsa/server-key.pem" "$P/ecdsa-server.info" \
    "$OUT/pki-ecdsa/server-cert.pem"
client_tmpl client "$EC_KU" > "$P/ecdsa-client.info"
issue "$P/ecdsa-ca-key.pem" "$OUT/pki-ecdsa/ca-cert.pem" "$OUT/pki-ecdsa/client-key.pem" "$P/ecdsa-client.info" \
    "$OUT/pki-ecdsa/client-cert.pem"

# --- PSK -----------------------------------------------------------------------------------
rm -f "$OUT/keys.psk" "$OUT/keys-wrong.psk" "$OUT/keys-multi.psk"
psktool -u alice -p "$OUT/keys.psk" >/dev/null
psktool -u alice -p "$OUT/keys-wrong.psk" >/dev/null
cp "$OUT/keys.psk" "$OUT/keys-multi.psk"
psktool -u bob -p "$OUT/keys-multi.psk" >/dev/null
cp "$OUT/keys.psk" "$OUT/psk/keys.psk"
if cmp -s "$OUT/keys.psk" "$OUT/keys-wrong.psk"; then
    echo "mkpki.sh: keys-wrong.psk equals keys.psk" >&2; exit 1
fi

chmod 600 "$OUT"/keys*.psk "$OUT/psk/keys.psk" "$OUT"/pki*/*-key.pem "$P"/*
chmod 644 "$OUT"/pki*/*-cert.pem "$OUT"/pki*/ca-crl.pem
chmod 755 "$OUT" "$OUT"/pki* "$OUT/psk"

# --- Self-check with openssl when it is available ------------------------------------------
if command -v openssl >/dev/null 2>&1; then
    ck() { "$@" >/dev/null 2>&1 || { echo "mkpki.sh: check failed: $*" >&2; exit 1; }; }
    ckfail() { if "$@" >/dev/null 2>&1; then echo "mkpki.sh: check unexpectedly passed: $*" >&2; exit 1; fi; }
    A=$OUT/pki/ca-cert.pem
    CRL=$OUT/pki/ca-crl.pem
    ck openssl verify -CAfile "$A" -purpose sslserver "$OUT/pki/server-cert.pem"
    ck openssl verify -CAfile "$A" -purpose sslclient "$OUT/pki/client-cert.pem"
    ck openssl verify -CAfile "$A" -crl_check -CRLfile "$CRL" "$OUT/pki/server-cert.pem"
    ck openssl verify -CAfile "$A" -crl_check -CRLfile "$CRL" "$OUT/pki/client-cert.pem"
    ck openssl verify -CAfile "$A" -verify_hostname localhost -verify_ip 127.0.0.1 "$OUT/pki/server-cert.pem"
    ck openssl verify -CAfile "$A" -verify_ip ::1 "$OUT/pki/server-cert.pem"
    ck openssl verify -CAfile "$A" "$OUT/pki-revoked/server-cert.pem"
    ckfail openssl verify -CAfile "$A" -crl_check -CRLfile "$CRL" "$OUT/pki-revoked/server-cert.pem"
    ck openssl verify -CAfile "$A" -verify_hostname wronghost "$OUT/pki-wronghost/server-cert.pem"
    ckfail openssl verify -CAfile "$A" -verify_hostname localhost "$OUT/pki-wronghost/server-cert.pem"
    ckfail openssl verify -CAfile "$A" "$OUT/pki-otherca/server-cert.pem"
    ck openssl verify -CAfile "$OUT/pki-otherca/ca-cert.pem" "$OUT/pki-otherca/server-cert.pem"
    ck openssl verify -CAfile "$OUT/pki-otherca/ca-cert.pem" "$OUT/pki-otherca/client-cert.pem"
    ck openssl verify -CAfile "$OUT/pki-ecdsa/ca-cert.pem" -verify_hostname localhost "$OUT/pki-ecdsa/server-cert.pem"
    ck openssl verify -CAfile "$OUT/pki-ecdsa/ca-cert.pem" -purpose sslclient "$OUT/pki-ecdsa/client-cert.pem"
    ck openssl crl -in "$CRL" -CAfile "$A" -noout
    for d in pki pki-wronghost pki-revoked pki-otherca pki-ecdsa; do
        for who in server client; do
            [ -e "$OUT/$d/$who-key.pem" ] || continue
            k=$(openssl pkey -in "$OUT/$d/$who-key.pem" -pubout 2>/dev/null)
            c=$(openssl x509 -in "$OUT/$d/$who-cert.pem" -noout -pubkey 2>/dev/null)
            if [ -z "$k" ] || [ "$k" != "$c" ]; then
                echo "mkpki.sh: key/cert mismatch in $d/$who" >&2
                exit 1
            fi
        done
    done
fi

# qemu-nbd generates DH parameters at every TLS start (0.1-0.9 s here) unless
# the credentials folder holds them: give it the RFC 7919 ffdhe2048 group.
for d in pki pki-wronghost pki-revoked pki-otherca pki-ecdsa psk; do
    [ -d "$OUT/$d" ] && certtool --get-dh-params --bits 2048 2>/dev/null \
        | sed -n '/BEGIN DH PARAMETERS/,/END DH PARAMETERS/p' > "$OUT/$d/dh-params.pem"
done

touch "$OUT/.done"
