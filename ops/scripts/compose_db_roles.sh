#!/usr/bin/env bash
# The compose database's first start (/docker-entrypoint-initdb.d, run once by the postgres image as the
# bootstrap superuser POSTGRES_USER): the two roles of docs/deploy.md "Database roles".
#   DB_OWNER_ROLE (backoffice_owner)  owns the database, the schema and, once `migrate` ran, every table
#                                     and function; only the one-shot `migrate` service logs in as it.
#   DB_APP_ROLE (backoffice_app)      web, workers and beat: no superuser, owns nothing; `setup_db_roles`
#                                     (run by `migrate`) grants it its privileges.
# Neither is a superuser. PUBLIC loses its default CONNECT and TEMPORARY on the database: the application
# role gets CONNECT alone (no temporary tables).
set -euo pipefail
: "${DB_OWNER_PASSWORD:?set DB_OWNER_PASSWORD in .env}" "${DB_APP_PASSWORD:?set DB_APP_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$POSTGRES_DB" -v owner="${DB_OWNER_ROLE:-backoffice_owner}" -v app="${DB_APP_ROLE:-backoffice_app}" \
    -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";
SQL
