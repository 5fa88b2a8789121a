#!/usr/bin/env bash
# Starts weft in microservices mode on this machine, each component its own
# process, with the in-memory development Kafka broker (weft-dev-kafka, NOT
# for production) and blocks in ./data-microservices/blocks. Ctrl-C, or
# SIGINT or SIGTERM sent to this script's PID (printed at start), stops
# everything: the components in order, each given its graceful shutdown.
# Used by `make run-microservices` (make passes SIGTERM on to this script,
# but not SIGINT: send SIGINT to the script, or to make's process group).
#
#   query API (Grafana's Tempo data source): http://127.0.0.1:3200
#   OTLP:                                    127.0.0.1:4317 (gRPC), 127.0.0.1:4318 (HTTP)
#
# EXTRA_CONFIG, if set, is a YAML file appended to every component's config
# (top-level keys the generated config does not set, such as overrides).
# BACKEND_WORKERS (default 1) is the number of backend-worker processes.
# BLOCK_DURATION and S3_* are read by microservices-config.sh.
set -euo pipefail

# A script started in the background by a non-interactive shell (another
# script, `make run-microservices &` in one, some CI runners) inherits SIGINT
# ignored, and bash cannot trap a signal ignored on entry: `kill -INT` would
# stop nothing. Run again with SIGINT back to its default, so that the trap
# below gets it.
if [[ -n "$(trap -p INT)" && -z "${WEFT_RUN_MICROSERVICES_REEXEC:-}" ]]; then
	export WEFT_RUN_MICROSERVICES_REEXEC=1
	if env --default-signal=INT true 2>/dev/null; then
		exec env --default-signal=INT "$BASH" "$0" "$@"
	elif command -v perl >/dev/null; then
		exec perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die "cannot run $ARGV[0]: $!\n"' "$BASH" "$0" "$@"
	fi
	echo "warning: SIGINT is ignored in this shell and cannot be restored; stop with SIGTERM" >&2
fi
set -m # each component in its own process group: Ctrl-C reaches this script only, which stops them in order

WEFT=${WEFT:-bin/weft}
KAFKA=${KAFKA:-bin/weft-dev-kafka}
DATA=${DATA:-data-microservices}
CONF=$(mktemp -d)
mkdir -p "$DATA"
pids=()

stop() {
	trap - INT TERM HUP EXIT
	echo "stopping..." >&2
	# Intake first, the broker last, each after the previous one exited.
	for ((i=${#pids[@]}-1; i>=0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	rm -rf "$CONF"
}
trap 'stop; exit 0' INT TERM HUP
trap stop EXIT

# config NAME HTTP GRPC GOSSIP [OTLP_GRPC OTLP_HTTP]
. "$(dirname "$0")/microservices-config.sh"
config() {
	weft_config "$CONF/$1.yaml" "$1" "$2" "$3" "$4" "$DATA" "${5:-0}" "${6:-0}"
	if [[ -n "${EXTRA_CONFIG:-}" ]]; then
		cat "$EXTRA_CONFIG" >> "$CONF/$1.yaml"
	fi
}

start() { # start NAME TARGET
	"$WEFT" -config.file="$CONF/$1.yaml" -target="$2" > >(sed -u "s/^/[$1] /") 2>&1 &
	pids+=($!)
}

"$KAFKA" -listen 127.0.0.1:9092 -partitions 4 > >(sed -u "s/^/[kafka] /") 2>&1 &
pids+=($!)
sleep 1

config query-frontend 3200 9095 7946;      start query-frontend query-frontend
config querier        3201 9096 7947;      start querier querier
config live-store-1   3202 9097 7948;      start live-store-1 live-store
config live-store-2   3203 9098 7949;      start live-store-2 live-store
config block-builder  3204 9099 7950;      start block-builder block-builder
config metrics-generator 3230 9130 7980;   start metrics-generator metrics-generator
config backend-scheduler 3206 9101 7952;   start backend-scheduler backend-scheduler
for ((w=0; w<${BACKEND_WORKERS:-1}; w++)); do # ports 3207+w, 9102+w, 7953+w
	name=backend-worker-$((w+1))
	config "$name" $((3207+w)) $((9102+w)) $((7953+w))
	echo "backend_worker: {backend_scheduler_addr: 127.0.0.1:9101}" >> "$CONF/$name.yaml"
	start "$name" backend-worker
done
config distributor    3205 9100 7951 4317 4318; start distributor distributor

echo "weft microservices: query API http://127.0.0.1:3200, OTLP 127.0.0.1:4317 (gRPC) and :4318 (HTTP); Ctrl-C or kill -INT $$ stops" >&2
while true; do sleep 1; done
