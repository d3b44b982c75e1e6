#!/usr/bin/env bash
# Creates the role the KCC services log in with and one database per service, owned by it.
# The postgres image runs this once, on an empty data directory
# (/docker-entrypoint-initdb.d/); it is safe to run again (it skips what exists).
#
#   APP_DB_USER       the services' role (not a superuser)
#   APP_DB_PASSWORD   its password
#   APP_DATABASES     database names, separated by spaces
#
# psql connects as POSTGRES_USER (default postgres); PGHOST/PGPORT may point it elsewhere.
set -euo pipefail

: "${APP_DB_USER:?APP_DB_USER is not set: the role the services log in with}"
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD is not set: copy deploy/compose/.env.example to .env and fill it in}"
: "${APP_DATABASES:?APP_DATABASES is not set: the databases to create, separated by spaces}"

identifier='^[a-z_][a-z0-9_]*$'
for name in "$APP_DB_USER" $APP_DATABASES; do
  if [[ ! $name =~ $identifier ]]; then
    echo "init-databases: '$name' is not a plain lower-case SQL name ([a-z_][a-z0-9_]*)" >&2
    exit 1
  fi
done

run_psql() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" "$@"
}

# The password travels as a psql variable (:'password' quotes it), never inside the SQL text.
run_psql --dbname postgres --set=role="$APP_DB_USER" --set=password="$APP_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SQL

for database in $APP_DATABASES; do
  # CREATE DATABASE cannot run inside a DO block or a function, hence \gexec.
  run_psql --dbname postgres --set=db="$database" --set=role="$APP_DB_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')
\gexec
SQL
  echo "init-databases: database $database is ready for $APP_DB_USER"
done
