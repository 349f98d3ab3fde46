#!/usr/bin/env bash
# Runs once, when the PostgreSQL container initialises its data directory (as the superuser).
# Two roles (SPEC §7): seats_owner owns the database and runs `seats migrate`; seats_app is
# what the service connects as, and gets only what `seats migrate` grants it.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$SEATS_OWNER_PASSWORD" -v app_password="$SEATS_APP_PASSWORD" <<'SQL'
CREATE ROLE seats_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE seats_app LOGIN PASSWORD :'app_password';
CREATE DATABASE seats OWNER seats_owner;
-- Nobody else may connect or create temporary tables; the runtime role may connect.
REVOKE ALL ON DATABASE seats FROM PUBLIC;
GRANT CONNECT ON DATABASE seats TO seats_app;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname seats <<'SQL'
ALTER SCHEMA public OWNER TO seats_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
