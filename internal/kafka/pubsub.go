package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// NewPublisher returns a synchronous publisher to the brokers of cfg:
// Publish hands all its messages to the producer at once, so that they
// travel in one request (one record batch per partition, compressed with
// cfg.ProducerCompression), and returns nil only once every message is
// acknowledged by all in-sync replicas of its partition, and otherwise an
// error naming the brokers, after about cfg.WriteTimeout at most when none
// is reachable.
// Messages go to the partitions Marshaler chooses. When auto-creation is
// on, a topic is created with cfg.AutoCreateTopicDefaultPartitions
// partitions before the first message is written to it.
//
// NewPublisher does not connect: the connection is made by the first
// Publish and made again by a later one if it failed, so that a process
// starts while Kafka is still coming up and its pushes fail until then.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (message.Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create the Kafka publisher: %w", err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &publisher{cfg: cfg, sc: sc, logger: logger, topics: newTopicCreator(cfg, sc)}, nil
}

type publisher struct {
	cfg    Config
	sc     *sarama.Config
	logger watermill.LoggerAdapter
	topics *topicCreator

	mu     sync.Mutex
	pub    sarama.SyncProducer // nil until connected
	closed bool
}

func (p *publisher) connect() (sarama.SyncProducer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("the publisher is closed")
	}
	if p.pub != nil {
		return p.pub, nil
	}
	pub, err := sarama.NewSyncProducer(p.cfg.Address, p.sc)
	if err != nil {
		return nil, fmt.Errorf("cannot create the Kafka producer: %w", err)
	}
	p.pub = pub
	return pub, nil
}

// Publish implements message.Publisher.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.publish(topic, msgs); err != nil {
		return fmt.Errorf("cannot publish to topic %q on Kafka brokers %s: %w", topic, strings.Join(p.cfg.Address, ","), err)
	}
	return nil
}

func (p *publisher) publish(topic string, msgs []*message.Message) error {
	if err := p.topics.ensure(topic); err != nil {
		return err
	}
	pms := make([]*sarama.ProducerMessage, len(msgs))
	for i, msg := range msgs {
		pm, err := (Marshaler{}).Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("cannot marshal message %s: %w", msg.UUID, err)
		}
		pms[i] = pm
	}
	pub, err := p.connect()
	if err != nil {
		return err
	}
	if len(pms) == 1 {
		_, _, err = pub.SendMessage(pms[0])
		return err
	}
	// One call for all: sarama batches them into one request instead of a
	// round trip per message.
	if err := pub.SendMessages(pms); err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return fmt.Errorf("%d of %d messages not written, the first: %w", len(perrs), len(pms), perrs[0])
		}
		return err
	}
	return nil
}

// Close implements message.Publisher.
func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.pub == nil {
		return nil
	}
	if err := p.pub.Close(); err != nil {
		return fmt.Errorf("cannot close the Kafka publisher: %w", err)
	}
	return nil
}

// NewSubscriber returns a subscriber that reads topics in the consumer
// group group (see Config.GroupFor), from the oldest offset when the group
// has none committed. A message is committed once acked; a nacked message
// is delivered again. When auto-creation is on, Subscribe first creates the
// topic with cfg.AutoCreateTopicDefaultPartitions partitions if it is
// missing, so that readers can start before writers.
func NewSubscriber(cfg Config, group string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	return newSubscriber(cfg, group, logger, nil)
}

// newSubscriber is NewSubscriber with a hook to adjust the sarama
// configuration (tests shorten the group timers).
func newSubscriber(cfg Config, group string, logger watermill.LoggerAdapter, tune func(*sarama.Config)) (*subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create the Kafka subscriber: %w", err)
	}
	if group == "" {
		return nil, errors.New("cannot create the Kafka subscriber: the consumer group is empty")
	}
	sc, err := cfg.Sarama()
	if err != nil {
		return nil, err
	}
	if tune != nil {
		tune(sc)
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
		Brokers:               cfg.Address,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         group,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("cannot create the Kafka subscriber: %w", err)
	}
	return &subscriber{Subscriber: sub, cfg: cfg, topics: newTopicCreator(cfg, sc)}, nil
}

type subscriber struct {
	*wmkafka.Subscriber
	cfg    Config
	topics *topicCreator
}

// Subscribe implements message.Subscriber.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.topics.ensure(topic); err != nil {
		return nil, fmt.Errorf("cannot subscribe to topic %q on Kafka brokers %s: %w", topic, strings.Join(s.cfg.Address, ","), err)
	}
	ch, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("cannot subscribe to topic %q on Kafka brokers %s: %w", topic, strings.Join(s.cfg.Address, ","), err)
	}
	return ch, nil
}

// SubscribeInitialize implements message.SubscribeInitializer: it creates
// topic if it is missing, whether auto-creation is on or not.
func (s *subscriber) SubscribeInitialize(topic string) error {
	if err := s.topics.create(topic); err != nil {
		return fmt.Errorf("cannot create topic %q on Kafka brokers %s: %w", topic, strings.Join(s.cfg.Address, ","), err)
	}
	return nil
}

// topicCreator creates topics with the configured partition count, once
// per topic and process, when auto-creation is on.
type topicCreator struct {
	cfg  Config
	sc   *sarama.Config
	mu   sync.Mutex
	done map[string]bool
}

func newTopicCreator(cfg Config, sc *sarama.Config) *topicCreator {
	// sarama's admin client refreshes the metadata of all topics when it
	// starts, which fails ("no specific topics") with Metadata.Full off.
	admin := *sc
	admin.Metadata.Full = true
	return &topicCreator{cfg: cfg, sc: &admin, done: map[string]bool{}}
}

// ensure creates topic when auto-creation is on and it was not created or
// found by this process yet.
func (t *topicCreator) ensure(topic string) error {
	if !t.cfg.AutoCreateTopicEnabled {
		return nil
	}
	return t.create(topic)
}

func (t *topicCreator) create(topic string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done[topic] {
		return nil
	}
	admin, err := sarama.NewClusterAdmin(t.cfg.Address, t.sc)
	if err != nil {
		return fmt.Errorf("cannot connect to create the topic: %w", err)
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     int32(t.cfg.AutoCreateTopicDefaultPartitions),
		ReplicationFactor: -1, // the broker's default.replication.factor
	}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return fmt.Errorf("cannot create the topic with %d partitions: %w", t.cfg.AutoCreateTopicDefaultPartitions, err)
		}
	}
	t.done[topic] = true
	return nil
}
