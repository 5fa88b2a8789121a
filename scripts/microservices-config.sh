# Sourced by run-microservices.sh and startup-times.sh: the config of one
# weft process of a microservices deployment on this machine, over the
# development Kafka broker on 127.0.0.1:9092, with blocks in DATA/blocks.
#
# Optional environment:
#   BLOCK_DURATION  block_builder.max_block_duration (default: weft's, 1m)
#   S3_ENDPOINT     host:port of an S3 server on plain HTTP: blocks go to its
#                   bucket S3_BUCKET (default weft), path style, with the keys
#                   S3_ACCESS_KEY and S3_SECRET_KEY, instead of DATA/blocks
#
# weft_config FILE NAME HTTP GRPC GOSSIP DATA [OTLP_GRPC OTLP_HTTP]
weft_config() {
	local file=$1 name=$2 http=$3 grpc=$4 gossip=$5 data=$6
	cat >"$file" <<YAML
server:
  http_listen_address: 127.0.0.1
  http_listen_port: $http
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: $grpc
  log_level: ${LOG_LEVEL:-info}
distributor:
  partitions: 4
  receivers:
    otlp:
      protocols:
        grpc: {endpoint: "127.0.0.1:${7:-0}"}
        http: {endpoint: "127.0.0.1:${8:-0}"}
ingest:
  kafka:
    address: 127.0.0.1:9092
    version: 2.3.1
    auto_create_topic_default_partitions: 4
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: $gossip
  join_members: [127.0.0.1:7946, 127.0.0.1:7947, 127.0.0.1:7948]
storage:
  trace:
    blocklist_poll: 10s
YAML
	if [[ -n "${S3_ENDPOINT:-}" ]]; then
		cat >>"$file" <<YAML
    backend: s3
    s3: {bucket: ${S3_BUCKET:-weft}, endpoint: $S3_ENDPOINT, access_key: ${S3_ACCESS_KEY:-}, secret_key: ${S3_SECRET_KEY:-}, insecure: true, forcepathstyle: true}
YAML
	else
		cat >>"$file" <<YAML
    backend: local
    local: {path: $data/blocks}
YAML
	fi
	cat >>"$file" <<YAML
block_builder:
  wal: {path: $data/wal-$name}
live_store:
  path: $data/live-store-$name
YAML
	if [[ -n "${BLOCK_DURATION:-}" ]]; then
		echo "  max_block_duration: $BLOCK_DURATION" >>"$file"
	fi
}
