#!/bin/sh
# The lab edge's self-signed certificate (CN localhost, for localhost and 127.0.0.1),
# generated on first use into the lab's secrets directory, which git ignores (Molecule
# gives every scenario its own). Prints the certificate or its private key: the lab's
# inventory reads them as edge_tls_certificate and edge_tls_key. Production takes both
# from the vault instead.
#
#   lab/certificate.sh SECRETS_DIR cert|key
set -eu

dir=${1:?usage: lab/certificate.sh SECRETS_DIR cert|key}
what=${2:?usage: lab/certificate.sh SECRETS_DIR cert|key}
umask 077
mkdir -p "$dir"
(
  # Lookups run in parallel (the certificate and the key, several hosts): one writer.
  flock 9
  if [ ! -s "$dir/edge.key" ] || [ ! -s "$dir/edge.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
      -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/edge.key.new" -out "$dir/edge.crt.new" 2>"$dir/edge.openssl.log" \
      || { cat "$dir/edge.openssl.log" >&2; exit 1; }
    mv "$dir/edge.key.new" "$dir/edge.key"
    mv "$dir/edge.crt.new" "$dir/edge.crt"
    rm -f "$dir/edge.openssl.log"
  fi
) 9>"$dir/.edge.lock"
case $what in
  cert) cat "$dir/edge.crt" ;;
  key) cat "$dir/edge.key" ;;
  *) echo "lab/certificate.sh: cert or key, not '$what'" >&2; exit 2 ;;
esac
