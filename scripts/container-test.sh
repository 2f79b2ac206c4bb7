#!/usr/bin/env bash
# Builds the real Dockerfile on a machine with no Docker engine and no image registry, then runs
# the image three times (SQLite default, then the machine's PostgreSQL and MariaDB) and drives the upload flow and
# the healthcheck over HTTP; then the operator's day-one path of docs/operations.md (env file,
# named volume, restart, backup, wipe, restore) and compose.yaml's PostgreSQL path (checked, and
# run with the URL and key from secret files). Run as root; CI runs it from .ci/run.
#
# How: podman and buildah from Debian; local stand-ins for the base images (a debootstrap'ed
# bookworm for debian:bookworm-slim; that plus gcc and this machine's trust store (no database
# client package: the build must not need one),
# with its rustup toolchain mounted read-only, for rust:1-bookworm); `buildah run --isolation chroot` to run a
# command inside the image (plain `podman run` cannot set rlimits or cgroups in this sandbox).
# Base images, the cargo registry and podman's layer cache persist under $CACHE between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${TEXTDROP_CI_CACHE:-/var/cache/textdrop-ci}
IMAGE=localhost/textdrop:test
BUILDER=localhost/rust:local-ca
PG_ADMIN=${CONTAINER_TEST_PG:-postgres://postgres@127.0.0.1:5432}
MYSQL_ADMIN=${CONTAINER_TEST_MYSQL:-mysql://root@127.0.0.1:3306}
log() { printf '\n== container-test: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

log "tools"
missing=()
for tool in podman buildah debootstrap curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq podman buildah debootstrap curl >/dev/null
fi
podman --version
mkdir -p "$CACHE"

log "base image stand-ins"
# Bumped whenever the stand-ins' recipe changes, so a cached older one is rebuilt.
STANDIN=3
standin_is_current() { [[ $(podman image inspect --format '{{index .Labels "textdrop.standin"}}' "$1" 2>/dev/null) == "$STANDIN" ]]; }
if ! standin_is_current localhost/debian:bookworm-slim; then
  started=$(now)
  rootfs="$CACHE/rootfs"
  [[ -x "$rootfs/bin/sh" ]] || { rm -rf "$rootfs"; debootstrap --variant=minbase bookworm "$rootfs" >/dev/null; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # The apt sources debian:bookworm-slim ships: the release, its updates and security updates
  # (debootstrap alone sets up the release only, whose packages may carry fixed bugs: its
  # libmariadb3 hands text values to Diesel empty).
  rm -f "$rootfs/etc/apt/sources.list"
  printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm bookworm-updates" \
    "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" "" \
    "Types: deb" "URIs: http://deb.debian.org/debian-security" "Suites: bookworm-security" \
    "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
    > "$rootfs/etc/apt/sources.list.d/debian.sources"
  podman rmi -f localhost/debian:bookworm-slim "$BUILDER" >/dev/null 2>&1 || true
  tar -C "$rootfs" -c . | podman import --change "LABEL textdrop.standin=$STANDIN" - localhost/debian:bookworm-slim >/dev/null
  echo "runtime base built in $(since "$started") s"
fi
if ! standin_is_current "$BUILDER"; then
  started=$(now)
  context=$(mktemp -d)
  # This machine reaches crates.io through its own certificate authority: the stand-in carries
  # the host's trust store, so the project's Dockerfile needs no mount for it (a read-only mount
  # of /etc/ssl/certs would also break `apt-get install ca-certificates` in the runtime stage).
  cp /etc/ssl/certs/ca-certificates.crt "$context/"
  cat > "$context/Containerfile" <<'EOF'
FROM localhost/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
EOF
  echo "LABEL textdrop.standin=$STANDIN" >> "$context/Containerfile"
  podman build --isolation=chroot -q -t "$BUILDER" "$context" >/dev/null
  rm -rf "$context"
  echo "builder base built in $(since "$started") s"
fi

log "podman build"
mkdir -p "$CACHE/cargo-registry"
started=$(now)
podman build --isolation=chroot \
  --build-arg RUST_IMAGE="$BUILDER" \
  --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim \
  -v "${RUSTUP_HOME:-$HOME/.rustup}:/usr/local/rustup:ro" \
  -v "${CARGO_HOME:-$HOME/.cargo}/bin:/usr/local/cargo/bin:ro" \
  -v "$CACHE/cargo-registry:/usr/local/cargo/registry" \
  -t "$IMAGE" . > "$CACHE/build.log" 2>&1 || { tail -n 40 "$CACHE/build.log"; exit 1; }
echo "image built in $(since "$started") s"

# The textdrop process serving on port $1 (with chroot isolation it is a host process; it is
# the one whose environment has this PORT).
textdrop_pid() {
  local pid
  for pid in $(pgrep -x textdrop); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "PORT=$1"; then echo "$pid"; fi
  done
}

# One run of the image's command in a container on the host network: start, wait for
# readiness, upload and read back, healthcheck inside the container, SIGTERM, exit code.
run_flow() { # $1 = label, rest = extra --env arguments
  local label=$1; shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local container
  container=$(buildah from "$IMAGE")
  local jar work
  work=$(mktemp -d)
  jar="$work/jar"
  log "run on $label (port $port)"
  local started
  started=$(now)
  # The image serves /metrics on 0.0.0.0:9464; here a free port of its own, on the host network.
  local mport
  mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  buildah run --isolation chroot --env "PORT=$port" --env "METRICS_ADDR=127.0.0.1:$mport" "$@" "$container" -- textdrop serve > "$work/server.log" 2>&1 &
  local server=$!
  local ready=no
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then ready=yes; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  if [[ $ready != yes ]]; then cat "$work/server.log"; buildah rm "$container" >/dev/null; exit 1; fi
  echo "$label: ready $(since "$started") s after start"
  fail() {
    echo "$label: FAILED: $*"; cat "$work/server.log"
    local pid=$(textdrop_pid "$port"); [[ -n $pid ]] && kill -TERM "$pid"
    wait "$server" || true; buildah rm "$container" >/dev/null; exit 1
  }

  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/") == 200 ]] || fail "the form page"
  printf 'hello from the container\n<b>escaped</b>\n' > "$work/file.txt"
  local status
  status=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' -F "textfile=@$work/file.txt" "http://127.0.0.1:$port/")
  [[ $status == "303 http://127.0.0.1:$port/action" ]] || fail "upload answered: $status"
  local page
  page=$(curl -s -b "$jar" "http://127.0.0.1:$port/action")
  grep -q 'hello from the container' <<<"$page" || fail "the page lacks the file: $page"
  grep -q '&lt;b&gt;escaped&lt;&#x2F;b&gt;' <<<"$page" || fail "the page lacks the escaped line"
  echo "$label: upload flow OK (303, lines shown escaped)"
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics") == 404 ]] || fail "public /metrics"
  # The page is read whole before it is searched (a `curl | grep -q` under pipefail fails when
  # grep stops reading first), a few times while the metrics listener comes up.
  local metrics=""
  for _ in $(seq 1 20); do
    metrics=$(curl -sf "http://127.0.0.1:$mport/metrics" || true)
    grep -q '^textdrop_store_operation_duration_seconds_count{operation="save"} 1$' <<<"$metrics" && break
    sleep 0.1
  done
  grep -q '^textdrop_store_operation_duration_seconds_count{operation="save"} 1$' <<<"$metrics" \
    || fail "metrics port: $(grep operation_duration_seconds_count <<<"$metrics")"
  echo "$label: /metrics only on the metrics port (public port 404)"
  buildah run --isolation chroot --env "PORT=$port" "$@" "$container" -- textdrop healthcheck
  echo "$label: healthcheck inside the image exits 0"
  buildah run --isolation chroot "$container" -- id -u | grep -qx 10001
  echo "$label: runs as uid 10001"

  # SIGTERM goes to textdrop itself (with chroot isolation it is a host process; it is the one
  # whose environment has this PORT): `buildah run` then exits with textdrop's exit code.
  local target
  target=$(textdrop_pid "$port")
  [[ -n $target ]] || { echo "$label: cannot find the textdrop process"; exit 1; }
  kill -TERM "$target"
  local code=0
  wait "$server" || code=$?
  echo "$label: exit code after SIGTERM: $code"
  # The log shows it listened, then stopped after the server and its cleanup task had ended.
  grep -q 'listening on' "$work/server.log" || { cat "$work/server.log"; exit 1; }
  grep -q 'textdrop stopped' "$work/server.log" || { echo "$label: no clean stop in the log"; cat "$work/server.log"; exit 1; }
  buildah rm "$container" >/dev/null
  rm -rf "$work"
  [[ $code == 0 ]]
}

run_flow "SQLite (the image's default DATABASE_URL)"

db=textdrop_container_test
psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
run_flow "PostgreSQL" --env "DATABASE_URL=$PG_ADMIN/$db"
psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"

# MariaDB: pure-Rust driver, no client library in the image.
mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
run_flow "MariaDB" --env "DATABASE_URL=$MYSQL_ADMIN/$db"
mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db"

# The operator's day-one path of docs/operations.md: the secret kept in an env file, the data in
# the image's /data volume, restarts that keep sessions, a backup taken while serving and copied
# out, a wipe, and a restore that keeps them too. Here `buildah run` stands in for `docker run`
# (it takes no --env-file, so the script reads the file) and one container's /data volume for
# the named volume (buildah mounts the image's VOLUME over any bind mount at /data, and a
# named volume that outlives its container cannot be made without a runtime).
day_one() {
  log "day one: env file, /data volume, restart, backup, wipe, restore"
  local work; work=$(mktemp -d)
  chmod 0755 "$work" # the container's user reads the backup from it; the env file stays 0600
  (umask 077; printf 'SECRET_KEY=%s\n' "$(openssl rand -hex 32)" > "$work/textdrop.env")
  local envs=()
  while IFS= read -r line; do [[ -n $line ]] && envs+=(--env "$line"); done < "$work/textdrop.env"
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local container server
  container=$(buildah from "$IMAGE")
  up() { # starts textdrop serve in the container; sets $server
    buildah run --isolation chroot --env "PORT=$port" --env "METRICS_ADDR=127.0.0.1:0" \
      "${envs[@]}" "$container" -- textdrop serve >> "$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
    cat "$work/server.log"; exit 1
  }
  down() { # SIGTERM to textdrop
    local pid; pid=$(textdrop_pid "$port")
    [[ -n $pid ]] && kill -TERM "$pid"
    wait "$server" || true
  }
  page() { curl -s -b "$work/jar" "http://127.0.0.1:$port/action"; }
  shows() {
    # The page whole first: `page | grep -q` fails under pipefail when grep stops reading early.
    local shown; shown=$(page)
    grep -q "$1" <<<"$shown" || { echo "day one: the page lacks '$1'"; cat "$work/server.log"; exit 1; }
  }
  up
  printf 'kept from day one\n' > "$work/file.txt"
  curl -s -c "$work/jar" -o /dev/null -F "textfile=@$work/file.txt" "http://127.0.0.1:$port/"
  shows 'kept from day one'
  down
  up
  shows 'kept from day one'
  echo "day one: a restart keeps the session (same env file, same /data)"
  # docker exec textdrop textdrop backup /data/backup.db; docker cp textdrop:/data/backup.db .
  buildah run --isolation chroot "$container" -- textdrop backup /data/backup.db
  buildah run --isolation chroot "$container" -- cat /data/backup.db > "$work/backup.db"
  chmod 0644 "$work/backup.db"
  buildah run --isolation chroot "$container" -- rm /data/backup.db
  down
  buildah run --isolation chroot "$container" -- sh -c 'rm -f /data/textdrop.db*'
  up
  grep -q 'kept from day one' <<<"$(page)" && { echo "day one: the wiped /data still shows the file"; exit 1; }
  down
  # The restore of docs/operations.md, with the copy mounted read-only at /backup.
  buildah run --isolation chroot -v "$work:/backup:ro" "$container" -- \
    sh -c 'rm -f /data/textdrop.db-wal /data/textdrop.db-shm && cp /backup/backup.db /data/textdrop.db'
  up
  shows 'kept from day one'
  echo "day one: backup taken while serving, /data wiped, restored: the session is back"
  down
  buildah rm "$container" >/dev/null
  rm -rf "$work"
}
day_one

# compose.yaml: its services, secrets and volumes are what docs/operations.md says; then the
# PostgreSQL path it describes, run as it would be: the URL and the key read from secret files.
log "compose.yaml"
python3 -c "import yaml" 2>/dev/null || pip install --quiet pyyaml
python3 - <<'PY'
import yaml
compose = yaml.safe_load(open("compose.yaml"))
services = compose["services"]
textdrop, postgres = services["textdrop"], services["postgres"]
assert textdrop["build"] == "." and textdrop["restart"] == "unless-stopped", textdrop
assert textdrop["depends_on"]["postgres"]["condition"] == "service_healthy"
env = textdrop["environment"]
assert env == {"DATABASE_URL_FILE": "/run/secrets/database_url", "SECRET_KEY_FILE": "/run/secrets/secret_key"}, env
assert set(textdrop["secrets"]) == {"database_url", "secret_key"}
assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
assert "pg_isready" in postgres["healthcheck"]["test"]
assert set(compose["secrets"]) == {"secret_key", "postgres_password", "database_url"}
assert all(s["file"].startswith("./secrets/") for s in compose["secrets"].values())
assert "postgres-data" in compose["volumes"]
print("compose.yaml: textdrop and postgres, secrets from files, a named volume, healthy before start")
PY
secrets=$(mktemp -d)
chmod 0755 "$secrets" # the container's user reads them, as a runtime's secrets mount lets it
openssl rand -hex 32 > "$secrets/secret_key"
psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS textdrop_compose WITH (FORCE)" -c "CREATE DATABASE textdrop_compose"
printf '%s/textdrop_compose\n' "$PG_ADMIN" > "$secrets/database_url"
chmod 0444 "$secrets"/*
run_flow "PostgreSQL, URL and key from secret files (compose.yaml's way)" \
  -v "$secrets:/run/secrets:ro" --env DATABASE_URL_FILE=/run/secrets/database_url \
  --env SECRET_KEY_FILE=/run/secrets/secret_key
psql -q "$PG_ADMIN/postgres" -c "DROP DATABASE IF EXISTS textdrop_compose WITH (FORCE)"
rm -rf "$secrets"

log "no C database client in the image"
container=$(buildah from "$IMAGE")
linked=$(buildah run --isolation chroot "$container" -- ldd /usr/local/bin/textdrop)
buildah rm "$container" >/dev/null
echo "$linked"
if grep -Ei 'lib(pq|mariadb|mysqlclient)' <<<"$linked"; then
  echo "the image's textdrop links a C database client library"; exit 1
fi

log "image size"
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'textdrop:test|debian:bookworm-slim'
image_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base_bytes=$(podman image inspect --format '{{.Size}}' localhost/debian:bookworm-slim)
own_mb=$(( (image_bytes - base_bytes) / 1000000 ))
echo "textdrop's own layers: $own_mb MB (image $((image_bytes / 1000000)) MB, base $((base_bytes / 1000000)) MB)"
(( own_mb < 40 )) || { echo "textdrop's own layers exceed the 40 MB budget"; exit 1; }
echo "container test passed"
