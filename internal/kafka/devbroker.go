package kafka

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DevBrokerVersion is the newest Kafka protocol version (Config.Version)
// with which sarama's consumer groups work against DevBroker; with newer
// ones (2.4.0 and later) the group consumer loops on "kafka: error decoding
// packet: invalid byteslice length". Real Kafka and Redpanda take newer ones.
// TestDevBrokerVersion checks it and documents the versions tried.
const DevBrokerVersion = "2.3.1"

// DevBroker is a Kafka-protocol broker for local runs and tests only: one
// broker of franz-go's kfake, listening on a loopback address, keeping
// every record in memory (all lost when it stops) with no replication and
// no limits. It is not for production.
type DevBroker struct {
	cluster *kfake.Cluster
	addrs   []string
}

// StartDevBroker starts a DevBroker listening on addr, a loopback
// host:port ("127.0.0.1:0" picks a free port; see Addrs). Topics created
// without a partition count, and those a client's metadata request
// creates, get partitions partitions. Clients must speak
// DevBrokerVersion.
func StartDevBroker(addr string, partitions int) (*DevBroker, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot start the dev Kafka broker: address %q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("cannot start the dev Kafka broker on %q: it listens on a loopback address only (such as 127.0.0.1:9092), being in memory and unauthenticated", addr)
	}
	if partitions < 1 || partitions > MaxPartitions {
		return nil, fmt.Errorf("cannot start the dev Kafka broker: partitions must be between 1 and %d, got %d", MaxPartitions, partitions)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ClusterID("weft-dev"),
		// kfake asks for 127.0.0.1:<port>; listen where we were told.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot start the dev Kafka broker on %s: %w", addr, err)
	}
	return &DevBroker{cluster: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the host:port the broker listens on, for Config.Address.
func (b *DevBroker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Close stops the broker; its records are gone.
func (b *DevBroker) Close() { b.cluster.Close() }
