package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// startBroker starts a DevBroker on 127.0.0.1 for one test.
func startBroker(t testing.TB, partitions int) *DevBroker {
	t.Helper()
	b, err := StartDevBroker("127.0.0.1:0", partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// testConfig is a configuration for b with short timeouts.
func testConfig(b *DevBroker, partitions int) Config {
	cfg := DefaultConfig()
	cfg.Address = b.Addrs()
	cfg.Version = DevBrokerVersion
	cfg.AutoCreateTopicDefaultPartitions = partitions
	cfg.WriteTimeout = 5 * time.Second
	cfg.DialTimeout = 2 * time.Second
	cfg.ReadTimeout = 5 * time.Second
	return cfg
}

// fastGroups shortens the consumer-group timers, as watermill-kafka's own
// tests do, so that rebalances in tests take a fraction of a second.
func fastGroups(sc *sarama.Config) {
	sc.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	sc.Consumer.Group.Rebalance.Timeout = 3 * time.Second
	sc.ChannelBufferSize = 1024
}

// roundTrip publishes one message to a fresh topic and reads it back in a
// consumer group within timeout.
func roundTrip(cfg Config, timeout time.Duration) error {
	logger := watermill.NopLogger{}
	topic := "trial-" + watermill.NewShortUUID()
	pub, err := NewPublisher(cfg, logger)
	if err != nil {
		return err
	}
	defer pub.Close()
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
		return err
	}
	sub, err := newSubscriber(cfg, "trial", logger, fastGroups)
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("subscription closed before a message")
		}
		m.Ack()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no message within %s", timeout)
	}
}
