package kafka

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/weftdb/weft/internal/testlong"
)

// suiteFeatures are the facts of this transport, as watermill-kafka's own
// tests state them for Kafka: consumer groups, at-least-once delivery
// (redelivery after nack or restart), records kept after they are read.
// Order is guaranteed within a partition only: messages without
// MetaPartition spread over the partitions by UUID, so the plain suite
// runs with GuaranteedOrder false, and the ordered one puts every message
// in one partition.
var suiteFeatures = tests.Features{
	ConsumerGroups:      true,
	ExactlyOnceDelivery: false,
	GuaranteedOrder:     false,
	Persistent:          true,
	// False: a new member of the same group does not get again what the
	// group already consumed (only a new group starts from the oldest).
	NewSubscriberReceivesOldMessages: false,
}

func suiteConstructors(t *testing.T, b *DevBroker, onePartition bool) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		cfg := testConfig(b, 8)
		logger := watermill.NopLogger{}
		pub, err := NewPublisher(cfg, logger)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := newSubscriber(cfg, group, logger, fastGroups)
		if err != nil {
			t.Fatal(err)
		}
		if onePartition {
			pub = partitionZero{pub}
		}
		return pub, sub
	}
	// One group per test: tests run in parallel on their own topics, and
	// members of one group on different topics would make every test's
	// subscribe rebalance all the others (under load, past the suite's 15s
	// wait for a message).
	return func(t *testing.T) (message.Publisher, message.Subscriber) {
		return withGroup(t, "test-"+strings.ReplaceAll(t.Name(), "/", "-"))
	}, withGroup
}

// partitionZero sets MetaPartition 0 on every message, as the distributor
// would for a one-partition pipeline.
type partitionZero struct{ message.Publisher }

func (p partitionZero) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(MetaPartition, "0")
	}
	return p.Publisher.Publish(topic, msgs...)
}

// TestPubSub runs the part of watermill's pub/sub suite that fits in a
// normal test run; TestPubSubLong runs all of it.
func TestPubSub(t *testing.T) {
	b := startBroker(t, 8)
	pubSub, _ := suiteConstructors(t, b, false)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, tests.TestContext, tests.PubSubConstructor)
	}{
		{"PublishSubscribe", tests.TestPublishSubscribe},
		{"ResendOnError", tests.TestResendOnError},
		{"NoAck", tests.TestNoAck},
		{"Topic", tests.TestTopic},
		{"PublisherClose", tests.TestPublisherClose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: suiteFeatures}, pubSub)
		})
	}
}

func TestPubSubLong(t *testing.T) {
	testlong.Skip(t)
	b := startBroker(t, 8)
	pubSub, withGroup := suiteConstructors(t, b, false)
	tests.TestPubSub(t, suiteFeatures, pubSub, withGroup)
}

func TestPubSubOrderedLong(t *testing.T) {
	testlong.Skip(t)
	b := startBroker(t, 8)
	pubSub, withGroup := suiteConstructors(t, b, true)
	f := suiteFeatures
	f.GuaranteedOrder = true
	tests.TestPubSub(t, f, pubSub, withGroup)
}
