# Shared by bench/bench.sh, bench-abuse.sh and bench-cleanup.sh (sourced, not run).

# The secret every benchmarked textdrop shares, so cookies survive a restart.
BENCH_SECRET=bench-secret-key-material-0123456789abcdef

# Waits until the server on port $1 (process $2, log $3) answers $4 (default /readyz); on
# failure prints its log and exits.
wait_ready() {
  local port=$1 pid=$2 log=$3 path=${4:-/readyz}
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port$path" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server on port $port did not start" >&2; cat "$log" >&2; exit 1
}

# SIGTERM to process $1, then waits for it.
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Peak resident memory of process $1, in MiB.
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The cookie value of a fresh session on port $1 holding the file $2.
new_session_on() {
  local jar
  jar=$(mktemp)
  curl -s -c "$jar" -o /dev/null -F "textfile=@$2" "http://127.0.0.1:$1/"
  awk '$6 == "id" { print $7 }' "$jar"
  rm -f "$jar"
}
