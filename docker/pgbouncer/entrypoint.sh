#!/bin/sh
# The runtime role's password comes from the environment, never from a file in the image:
# PgBouncer checks the clients' SCRAM against it and logs in to PostgreSQL with it.
set -eu
umask 077
: "${SEATS_APP_PASSWORD:?set SEATS_APP_PASSWORD}"
printf '"seats_app" "%s"\n' "$SEATS_APP_PASSWORD" > /var/lib/bouncer/userlist.txt
exec /usr/sbin/pgbouncer /etc/pgbouncer/pgbouncer.ini
