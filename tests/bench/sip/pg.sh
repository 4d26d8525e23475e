# Sourced by run.sh for PG=1 (issue 20): the location of both servers on one
# throwaway PostgreSQL cluster.
#
# Needs (Debian): postgresql (15; the tests use it too), kamailio-postgres-modules
# (db_postgres.so; the schema files /usr/share/kamailio/postgres/*.sql come with
# kamailio). Benchmarks are outside CI, so scripts/install-deps does not install
# kamailio-postgres-modules.
#
# One cluster (initdb -A trust -U besip, fsync off, 127.0.0.1 only, run as the
# postgres user), three databases:
#   postgres   besip-pbxd's shared location (cluster_database; it creates
#              besip_location itself), box name "bench";
#   kam2       Kamailio usrloc db_mode 2 (write-back, flushed by its timer every
#              1 s — besip-pbxd's sync runs every 0.5 s);
#   kam1       a second Kamailio with usrloc db_mode 1 (write-through), on KAM1_PORT.
# Kamailio's tables come from /usr/share/kamailio/postgres/{standard,usrloc}-create.sql.
#
# PostgreSQL CPU: utime+stime of the postmaster and its direct children
# (backends, walwriter, checkpointer, …) over each step, added to the server
# under test (the servers are tested one after the other; an idle besip-pbxd
# still polls the database twice a second during Kamailio's steps, a few ms).
# PostgreSQL is not pinned: under PIN=1 it runs on whichever core is free.

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "PG=1: PostgreSQL server missing" >&2; exit 1; }
[ -f "/usr/lib/x86_64-linux-gnu/kamailio/modules/db_postgres.so" ] ||
  { echo "PG=1: kamailio-postgres-modules missing" >&2; exit 1; }
PG_PORT=${PG_PORT:-25432}
KAM1_PORT=${KAM1_PORT:-35060}
PG_DIR=""; PG_PID=""

pg_as() { runuser -u postgres -- "$@"; }
# psql_q DB SQL → unaligned, tuples-only output.
psql_q() { pg_as "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U besip -d "$1" -c "$2"; }

pg_start() {
  PG_DIR=$(mktemp -d /tmp/besip-sip-bench-pg.XXXXXX)
  chown postgres:postgres "$PG_DIR"
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U besip --no-sync > "$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start > /dev/null ||
    { cat "$PG_DIR/log" >&2; exit 1; }
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  local db
  for db in kam2 kam1; do
    psql_q postgres "CREATE DATABASE $db" > /dev/null
    pg_as "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U besip -d "$db" -v ON_ERROR_STOP=1 \
      -f /usr/share/kamailio/postgres/standard-create.sql -f /usr/share/kamailio/postgres/usrloc-create.sql > /dev/null
  done
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop > /dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$PG_DIR"
}

# The options of `config pbx 'main'` for besip-pbxd.
pg_besip_options() {
  printf "\toption cluster_database 'postgresql://besip@127.0.0.1:%s/postgres'\n\toption cluster_box_name 'bench'\n" "$PG_PORT"
}

# pg_kamailio_cfg MODE DB PORT OUT: a Kamailio config with usrloc on DB.
pg_kamailio_cfg() {
  sed -e "s/@PORT@/$3/" -e "s/@CHILDREN@/$CHILDREN/" -e "s/@DB_MODE@/$1/" \
    -e "s|@DB_URL@|postgres://besip@127.0.0.1:$PG_PORT/$2|" \
    -e 's/^#!KAMAILIO$/#!KAMAILIO\n#!define WITH_PG/' "$HERE/kamailio.cfg.in" > "$4"
}

pg_cpu_ticks() { cpu_ticks "$PG_PID"; }

# Rows in the location table of each server.
pg_rows_besip() { psql_q postgres "SELECT count(*) FROM besip_location" 2>/dev/null || echo "no table"; }
pg_rows_kam() { psql_q "$1" "SELECT count(*) FROM location" 2>/dev/null || echo "no table"; }

# PG_LAG=1: how far the database is behind the server during each step,
# sampled every 0.5 s with psql (its connections cost PostgreSQL a little CPU,
# hence opt-in). besip-pbxd: now + 3600 (the scenario's Expires) − the newest
# expires_at written; Kamailio: now − the newest last_modified. Whole seconds,
# so 1 s means "within the second"; sampling stops when sipp ends.
# pg_lag_loop WHO OUT: appends one lag per line to OUT until killed.
pg_lag_loop() {
  local db sql
  case $1 in
    besip) db=postgres; sql="SELECT extract(epoch FROM now())::bigint + 3600 - max(expires_at) FROM besip_location" ;;
    kamailio) db=kam2; sql="SELECT extract(epoch FROM localtimestamp - max(last_modified))::bigint FROM location" ;;
    *) db=kam1; sql="SELECT extract(epoch FROM localtimestamp - max(last_modified))::bigint FROM location" ;;
  esac
  # The first second of a step still shows the pause between steps: skipped.
  local n=0
  while sleep 0.5; do
    n=$((n + 1)); [ "$n" -le 2 ] && continue
    psql_q "$db" "$sql" >> "$2" 2>/dev/null || true
  done
}
