#!/usr/bin/env bash
# docker/ci-demo.sh: builds the image offline and runs docker/compose.yaml
# end to end, failing at the first thing that does not hold. CI runs it as
#   bash docker/with-dockerd.sh bash docker/ci-demo.sh
# after `cargo build --release` (it needs target/release/h2hop-{front,
# sidecar,certs,echo,demo}), as root, with mmdebstrap, docker and
# docker-compose installed.
#
# 1. The runtime base from Debian's packages (docker/base-image.sh), the
#    image from the host's binaries (docker/build-image.sh): size, user,
#    read-only root.
# 2. `docker-compose up` on free loopback ports: the certs job exits 0, and
#    app, sidecar and front each turn healthy.
# 3. h2hop-demo --check: five WebSocket echoes and the demo page (a plain
#    GET) through front -> sidecar -> app.
# 4. `docker-compose stop` ends every service within the drain timeout, and
#    each exits 0 (a clean drain, not the engine's SIGKILL).
# 5. The logs: the front's and the sidecar's access lines for the tunnel
#    and the page.
# 6. `docker-compose down --volumes` removes it all.
set -euo pipefail
base=h2hop-base:bookworm
image=h2hop
project=h2hopci
compose=(docker-compose --ansi never -p "$project" -f docker/compose.yaml)
drain_timeout=20
started=$SECONDS

echo "-- images"
bash docker/base-image.sh "$base"
bash docker/build-image.sh "$base" "$image"

# Five distinct free loopback ports (docker/free-ports).
read -r H2HOP_DEMO_FRONT_PORT H2HOP_DEMO_FRONT_ADMIN_PORT H2HOP_DEMO_SIDECAR_PORT \
  H2HOP_DEMO_SIDECAR_ADMIN_PORT H2HOP_DEMO_APP_PORT < <(python3 docker/free-ports 5)
export H2HOP_DEMO_FRONT_PORT H2HOP_DEMO_FRONT_ADMIN_PORT H2HOP_DEMO_SIDECAR_PORT \
  H2HOP_DEMO_SIDECAR_ADMIN_PORT H2HOP_DEMO_APP_PORT

logs() { "${compose[@]}" logs --no-color "$@" 2>&1; }
cleanup() {
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "-- compose logs (the demo failed)" >&2
    logs >&2 || true
  fi
  "${compose[@]}" down --volumes --timeout 5 >/dev/null 2>&1 || true
}
trap cleanup EXIT

container() { "${compose[@]}" ps -q "$1"; }
state() { docker inspect -f "$1" "$(container "$2")"; }

echo "-- docker-compose up (front on 127.0.0.1:$H2HOP_DEMO_FRONT_PORT)"
up_started=$SECONDS
"${compose[@]}" up --detach --no-build
# docker-compose 1.29 returns once every container started; the healthchecks
# decide the rest.
for service in certs app sidecar front; do
  deadline=$((SECONDS + 90))
  while :; do
    if [ "$service" = certs ]; then
      status=$(state '{{.State.Status}} {{.State.ExitCode}}' certs)
      [ "$status" = "exited 0" ] && break
      case $status in exited*) echo "certs job: $status" >&2; exit 1 ;; esac
    else
      health=$(state '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$service")
      [ "$health" = healthy ] && break
      [ "$health" = unhealthy ] && { echo "$service is unhealthy" >&2; exit 1; }
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$service not ready within 90 s" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "$service: $( [ "$service" = certs ] && echo "exited 0" || echo healthy) after $((SECONDS - up_started)) s"
done

echo "-- a WebSocket echo and a plain GET through front -> sidecar -> app"
target/release/h2hop-demo --check "127.0.0.1:$H2HOP_DEMO_FRONT_PORT"

echo "-- docker-compose stop, within the ${drain_timeout} s drain timeout"
stop_started=$SECONDS
"${compose[@]}" stop --timeout 25
stop_took=$((SECONDS - stop_started))
echo "stopped in $stop_took s"
if [ "$stop_took" -ge "$drain_timeout" ]; then
  echo "docker-compose stop took $stop_took s, not under the ${drain_timeout} s drain timeout" >&2
  exit 1
fi
for service in app sidecar front; do
  code=$(state '{{.State.ExitCode}}' "$service")
  if [ "$code" != 0 ]; then
    echo "$service exited $code, not 0" >&2
    exit 1
  fi
done
echo "app, sidecar and front exited 0"

echo "-- the tunnel and the page in the access logs"
# One JSON line per exchange (H2HOP_LOG_FORMAT=json in the image): the
# front answered the upgrade 101 and the page 200; the sidecar got 200 for
# the extended CONNECT and for the GET; each ended with everything
# delivered (close "done": the client ends the WebSocket with a full close
# handshake).
expect_line() {
  local service=$1 kind=$2 status=$3 line
  line=$(logs "$service" | grep '"h2hop::access"' | grep "\"kind\":\"$kind\"" \
    | grep "\"status\":$status" | grep '"close":"done"' | head -1)
  if [ -z "$line" ]; then
    echo "no access line kind=$kind status=$status close=done in the $service's log" >&2
    exit 1
  fi
  echo "$service: ${line#*| }"
}
expect_line front tunnel 101
expect_line sidecar tunnel 200
expect_line front request 200
expect_line sidecar request 200

echo "-- docker-compose down"
down_started=$SECONDS
"${compose[@]}" down --volumes --timeout 25
echo "down in $((SECONDS - down_started)) s; the whole demo check took $((SECONDS - started)) s"
trap - EXIT
