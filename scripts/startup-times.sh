#!/usr/bin/env bash
# Measures how long weft takes to start and to stop: for each process, the
# time from exec to the first 200 of /ready, and from SIGTERM to exit.
#
#   scripts/startup-times.sh [RUNS]     (default 5 runs; prints each and the median)
#
# mono: `make run`'s process, the monolithic default config (no -config.file),
# run in a fresh directory so that ./data starts empty; ports 3200, 9095,
# 4317 and 4318 must be free.
# micro: the processes of scripts/run-microservices.sh with the same configs
# (ports 3200-3205, 9092, 9095-9100, 4317-4318, 7946-7951), started one after
# the other in the script's order, each waited for, then stopped in reverse
# order (intake first) as the script does, the dev Kafka broker last.
#
# WEFT and KAFKA name the binaries (default bin/weft, bin/weft-dev-kafka);
# MODES is "mono micro" by default; KEEP=1 keeps the processes' logs, and
# LOG_LEVEL=debug makes the microservices processes log each module's start and stop.
# When another weft holds those ports, run it in a network namespace of its
# own (as root): unshare -n sh -c 'ip link set lo up && scripts/startup-times.sh'.
set -euo pipefail

RUNS=${1:-5}
WEFT=$(realpath "${WEFT:-bin/weft}")
KAFKA=$(realpath "${KAFKA:-bin/weft-dev-kafka}")
MODES=${MODES:-mono micro}
WORK=$(mktemp -d)
trap '[[ -n "${KEEP:-}" ]] && echo "logs in $WORK" >&2 || rm -rf "$WORK"' EXIT

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }

# wait_ready PORT PID: waits (60 s at most) until /ready answers 200.
wait_ready() {
	local i
	for ((i = 0; i < 6000; i++)); do
		if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready" 2>/dev/null)" == 200 ]]; then
			return 0
		fi
		if ! kill -0 "$2" 2>/dev/null; then
			echo "process $2 (port $1) exited before it was ready" >&2
			return 1
		fi
		sleep 0.01
	done
	echo "port $1: not ready after 60s" >&2
	return 1
}

# stop KEY PID: sends SIGTERM and records under KEY the milliseconds until
# the process exited (not in a subshell: only this shell can wait for it).
stop() {
	local t0 rc=0
	t0=$(now)
	kill -TERM "$2"
	wait "$2" || rc=$?
	record "$1" "$(ms "$t0" "$(now)")"
	if ((rc != 0)); then
		echo "$1: exit code $rc" >&2
	fi
}

declare -A samples

record() { samples[$1]+="$2 "; }

median() {
	tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

mono() {
	local dir=$WORK/mono-$1 t0 pid
	mkdir -p "$dir"
	t0=$(now)
	(cd "$dir" && exec "$WEFT" 2>"$dir/log") &
	pid=$!
	wait_ready 3200 "$pid"
	record "mono start" "$(ms "$t0" "$(now)")"
	stop "mono stop" "$pid"
}

# config NAME HTTP GRPC GOSSIP DATA [OTLP_GRPC OTLP_HTTP]: as scripts/run-microservices.sh.
. "$(dirname "$0")/microservices-config.sh"
config() { weft_config "$5/$1.yaml" "$1" "$2" "$3" "$4" "$5" "${6:-0}" "${7:-0}"; }

micro() {
	local data=$WORK/micro-$1 kpid t0 pid i
	mkdir -p "$data"
	"$KAFKA" -listen 127.0.0.1:9092 -partitions 4 2>"$data/kafka.log" &
	kpid=$!
	for ((i = 0; i < 500; i++)); do
		(echo >/dev/tcp/127.0.0.1/9092) 2>/dev/null && break
		sleep 0.01
	done
	local names=(query-frontend querier live-store-1 live-store-2 block-builder distributor)
	local targets=(query-frontend querier live-store live-store block-builder distributor)
	local https=(3200 3201 3202 3203 3204 3205) pids=()
	config query-frontend 3200 9095 7946 "$data"
	config querier 3201 9096 7947 "$data"
	config live-store-1 3202 9097 7948 "$data"
	config live-store-2 3203 9098 7949 "$data"
	config block-builder 3204 9099 7950 "$data"
	config distributor 3205 9100 7951 "$data" 4317 4318
	for i in "${!names[@]}"; do
		t0=$(now)
		"$WEFT" -config.file="$data/${names[i]}.yaml" -target="${targets[i]}" 2>"$data/${names[i]}.log" &
		pid=$!
		pids+=("$pid")
		wait_ready "${https[i]}" "$pid"
		record "${names[i]} start" "$(ms "$t0" "$(now)")"
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop "${names[i]} stop" "${pids[i]}"
	done
	kill -TERM "$kpid"
	wait "$kpid" || true
}

for ((run = 1; run <= RUNS; run++)); do
	for m in $MODES; do
		"$m" "$run"
	done
done

printf '%-22s %8s   %s\n' "process figure" "median" "runs (ms)"
for key in "mono start" "mono stop" \
	"query-frontend start" "querier start" "live-store-1 start" "live-store-2 start" "block-builder start" "distributor start" \
	"distributor stop" "block-builder stop" "live-store-2 stop" "live-store-1 stop" "querier stop" "query-frontend stop"; do
	[[ -n "${samples[$key]:-}" ]] || continue
	printf '%-22s %6s ms   %s\n' "$key" "$(median "${samples[$key]}")" "${samples[$key]}"
done
