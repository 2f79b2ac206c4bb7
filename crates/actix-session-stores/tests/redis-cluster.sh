#!/usr/bin/env bash
# A Redis Cluster on loopback for tests and benchmarks: 6 nodes (3 masters, 3 replicas) on
# ports BASE+1 .. BASE+6, no persistence, node timeout 2 s, and cluster-require-full-coverage
# off, so while a master fails over only its own slots are refused. Each node also binds port+10000 for
# the cluster bus, so BASE+6+10000 must stay below 32768 (the ephemeral range starts there).
#
#   scripts/redis-cluster.sh start DIR [BASE]   start the nodes and create the cluster; refuses
#                                               (exit 3) when a node's port or bus port is
#                                               taken: it never touches a Redis it did not start
#   scripts/redis-cluster.sh stop DIR           stop exactly the nodes this script started in DIR
#   scripts/redis-cluster.sh url [BASE]         print the DATABASE_URL for it
#
# DIR holds each node's pid file, config and log. BASE defaults to 7000.
set -euo pipefail

usage() { echo "usage: $0 start DIR [BASE] | stop DIR | url [BASE]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
command=$1

url() { # $1 base
  local nodes=()
  for i in 1 2 3 4 5 6; do nodes+=("127.0.0.1:$(($1 + i))"); done
  local IFS=,
  echo "redis+cluster://${nodes[*]}"
}

case $command in
  url) url "${2:-7000}" ;;
  start)
    [[ $# -ge 2 ]] || usage
    dir=$2; base=${3:-7000}
    (( base + 6 + 10000 < 32768 )) || { echo "BASE $base: port+10000 would reach the ephemeral range" >&2; exit 2; }
    taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    for i in 1 2 3 4 5 6; do
      for port in $((base + i)) $((base + i + 10000)); do
        if taken "$port"; then
          echo "port $port is taken: choose another BASE (this script starts its own nodes only)" >&2
          exit 3
        fi
      done
    done
    mkdir -p "$dir"
    echo "$base" > "$dir/base"
    ports=()
    for i in 1 2 3 4 5 6; do
      port=$((base + i)); ports+=("127.0.0.1:$port")
      rm -f "$dir/nodes-$port.conf"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$dir/nodes-$port.conf" --cluster-node-timeout 2000 \
        --save '' --appendonly no --repl-diskless-sync-delay 0 --cluster-require-full-coverage no --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log"
    done
    for i in 1 2 3 4 5 6; do
      for _ in $(seq 1 50); do redis-cli -p $((base + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${ports[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
      || { cat "$dir/create.log" >&2; exit 1; }
    for _ in $(seq 1 100); do
      ok=0
      for i in 1 2 3 4 5 6; do
        redis-cli -p $((base + i)) cluster info 2>/dev/null | grep -q 'cluster_state:ok' && ok=$((ok + 1))
      done
      [[ $ok == 6 ]] && break
      sleep 0.1
    done
    [[ $ok == 6 ]] || { echo "the cluster did not reach cluster_state:ok" >&2; exit 1; }
    # A replica that has not finished its first sync cannot take over from its master: wait
    # until every replica's link is up.
    for _ in $(seq 1 100); do
      up=0
      for i in 1 2 3 4 5 6; do
        info=$(redis-cli -p $((base + i)) info replication 2>/dev/null)
        if grep -q 'role:master' <<<"$info" || grep -q 'master_link_status:up' <<<"$info"; then up=$((up + 1)); fi
      done
      [[ $up == 6 ]] && break
      sleep 0.1
    done
    [[ $up == 6 ]] || { echo "the replicas did not finish syncing" >&2; exit 1; }
    url "$base"
    ;;
  stop)
    [[ $# -ge 2 ]] || usage
    dir=$2
    pids=()
    for pidfile in "$dir"/redis-*.pid; do
      [[ -e $pidfile ]] || continue
      pids+=("$(cat "$pidfile")")
      rm -f "$pidfile"
    done
    ((${#pids[@]})) || exit 0
    kill "${pids[@]}" 2>/dev/null || true
    # Wait until they are gone, so a start right after does not find them still answering.
    for _ in $(seq 1 100); do
      alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [[ $alive == 0 ]] && break
      sleep 0.1
    done
    ;;
  *) usage ;;
esac
