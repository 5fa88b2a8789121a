# Sourced by run-microservices.sh and startup-times.sh: the config of one
# weft process of a microservices deployment on this machine, over the
# development Kafka broker on 127.0.0.1:9092, with blocks in DATA/blocks.
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
    backend: local
    local: {path: $data/blocks}
    blocklist_poll: 10s
block_builder:
  wal: {path: $data/wal-$name}
YAML
}
