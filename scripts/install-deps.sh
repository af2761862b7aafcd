#!/usr/bin/env bash
# Debian packages the tests and the demo need: a real Cyrus IMAP and real clients.
# Idempotent; needs root (or sudo) when something is missing.
set -euo pipefail
pkgs=(clang-14 libclang-rt-14-dev systemd cyrus-imapd cyrus-pop3d cyrus-admin sasl2-bin libsasl2-modules sieve-connect openssl python3 curl haproxy fail2ban)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Cyrus's package starts its own daemon on install: keep it from binding the standard ports.
printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
$sudo chmod +x /usr/sbin/policy-rc.d
trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
