#!/usr/bin/env bash
# docker/with-dockerd.sh COMMAND...: runs COMMAND against a Docker engine of
# its own, then stops the engine and removes everything it stored.
#
# dockerd (Debian's docker.io) starts as root with its data root, exec root,
# pid file and API socket in a new temporary directory, without a bridge or
# iptables rules (every container here uses the host's network), so it
# neither touches nor sees an engine the machine may already run. COMMAND
# gets DOCKER_HOST pointing at it. CI (.ci/run) runs the Docker checks this
# way.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: docker/with-dockerd.sh COMMAND..." >&2; exit 2; }

dir=$(mktemp -d /tmp/h2hop-dockerd.XXXXXX)
pid=
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "dockerd did not stop within 30 s; killing it" >&2
      kill -KILL "$pid"
    fi
    wait "$pid" 2>/dev/null || true
  fi
  # Anything dockerd left mounted under its roots (it unmounts on a clean
  # stop) would make rm fail.
  grep -o " $dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT

dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
  -H "unix://$dir/docker.sock" --bridge none --iptables=false \
  >"$dir/dockerd.log" 2>&1 &
pid=$!
export DOCKER_HOST="unix://$dir/docker.sock"
for _ in $(seq 120); do
  docker version >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited at start:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
  fi
  sleep 0.5
done
if ! docker version >/dev/null 2>&1; then
  echo "dockerd did not answer within 60 s:" >&2
  tail -20 "$dir/dockerd.log" >&2
  exit 1
fi
echo "dockerd $(docker version -f '{{.Server.Version}}') on $DOCKER_HOST"
status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "-- last lines of dockerd's log" >&2
  tail -20 "$dir/dockerd.log" >&2
fi
exit "$status"
