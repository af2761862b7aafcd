#!/bin/sh
# certbot deploy hook for mailfront: reload certificates after a renewal.
#
# Install (either):
#   install -m 0755 certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/mailfront.sh
#   certbot renew --deploy-hook /usr/share/mailfront/contrib/certbot-deploy-hook.sh
#
# certbot runs deploy hooks once per renewed lineage (RENEWED_LINEAGE is set);
# a reload is cheap and never drops a connection, so several in a row are fine.
# A reload that cannot build a certificate store keeps the old one and logs why
# (see `mailfront check --config /etc/mailfront/mailfront.yaml`).
#
# It only sends SIGHUP: it never touches files, so it is safe to run at any time.
set -u

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mailfront; then
    # ExecReload= sends SIGHUP to the main process.
    systemctl reload mailfront && exit 0
    echo "mailfront deploy hook: systemctl reload mailfront failed" >&2
    exit 1
fi

# Not run by systemd: signal a `mailfront run` process, if there is one.
if pkill -HUP -f 'mailfront run'; then
    exit 0
fi
echo "mailfront deploy hook: mailfront is not running; nothing to reload${RENEWED_LINEAGE:+ (renewed: $RENEWED_LINEAGE)}" >&2
exit 0
