// Command weft-dev-kafka runs a Kafka-protocol broker in memory on a
// loopback address, for trying weft's microservices mode on one machine
// and for tests (it is franz-go's kfake). It keeps nothing on disk, has no
// replication, no authentication and no limits: NOT FOR PRODUCTION. Point
// weft at real Kafka or Redpanda there (docs/deployment.md).
//
//	weft-dev-kafka -listen 127.0.0.1:9092 -partitions 16
//
// Clients must speak Kafka protocol version kafka.DevBrokerVersion (set
// ingest.kafka.version to it). It runs until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftdb/weft/internal/kafka"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "weft-dev-kafka:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("weft-dev-kafka", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "loopback address to listen on")
	partitions := fs.Int("partitions", 16, "partitions of the topics clients create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := kafka.StartDevBroker(*listen, *partitions)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(os.Stderr, "weft-dev-kafka: in-memory Kafka broker for development and tests, NOT FOR PRODUCTION, listening on %v; set ingest.kafka.version: %s\n",
		b.Addrs(), kafka.DevBrokerVersion)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
