package kafka

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/pipelines"
)

// Transport carries the pipeline's edges between processes over Kafka
// (it implements pipelines.Transport): the output of node X goes to topic
// TopicFor(X), and each node reading it from another process is its own
// consumer group, GroupFor(node). One publisher serves the whole process.
type Transport struct {
	cfg       Config
	logger    watermill.LoggerAdapter
	recreated *prometheus.CounterVec // nil without WithMetrics

	mu   sync.Mutex
	pub  message.Publisher
	subs []message.Subscriber
}

// NewTransport returns a transport over the brokers of cfg. Nothing
// connects until a publisher or subscriber is used.
func NewTransport(cfg Config, logger watermill.LoggerAdapter) *Transport {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Transport{cfg: cfg, logger: logger}
}

// WithMetrics registers the transport's metrics in reg and returns t:
// weft_kafka_topic_recreated_total{topic,group}.
func (t *Transport) WithMetrics(reg prometheus.Registerer) *Transport {
	t.recreated = metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_kafka_topic_recreated_total",
		Help: "Times a topic read by a consumer group was found recreated (its topic ID changed, as after a restart of the dev broker or a delete and create); its partitions are read again from the start.",
	}, []string{"topic", "group"}))
	return t
}

// Topic is the topic of node's output.
func (t *Transport) Topic(node string) string { return t.cfg.TopicFor(node) }

// Publisher returns the process's publisher, creating it on first use.
func (t *Transport) Publisher() (message.Publisher, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pub == nil {
		pub, err := NewPublisher(t.cfg, t.logger)
		if err != nil {
			return nil, err
		}
		t.pub = pub
	}
	return t.pub, nil
}

// Subscriber returns a subscriber in node's consumer group.
func (t *Transport) Subscriber(node string) (message.Subscriber, error) {
	sub, err := NewSubscriber(t.cfg, t.cfg.GroupFor(node), t.logger)
	if err != nil {
		return nil, err
	}
	return t.track(sub), nil
}

// track keeps sub to close it with the transport.
func (t *Transport) track(sub message.Subscriber) message.Subscriber {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs = append(t.subs, sub)
	return sub
}

// CommitSubscriber returns a subscriber of topic in node's consumer group
// that commits only through the returned Committer.
func (t *Transport) CommitSubscriber(node, topic string) (message.Subscriber, pipelines.Committer, error) {
	sub, err := NewCommitSubscriber(t.cfg, t.cfg.GroupFor(node), topic, t.logger)
	if err != nil {
		return nil, nil, err
	}
	sub.recreated = t.recreated
	return t.track(sub), sub, nil
}

// ReplaySubscriber returns a subscriber of topic in node's consumer group
// that reads each assigned partition from the last window and never
// commits.
func (t *Transport) ReplaySubscriber(node, topic string, window time.Duration, onRevoke func([]int32)) (message.Subscriber, error) {
	sub, err := NewReplaySubscriber(t.cfg, t.cfg.GroupFor(node), topic, window, t.logger)
	if err != nil {
		return nil, err
	}
	if onRevoke != nil {
		sub.OnRevoke(onRevoke)
	}
	sub.recreated = t.recreated
	return t.track(sub), nil
}

// Close closes the publisher and the subscribers (closing twice is fine).
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, s := range t.subs {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close a Kafka subscriber: %w", err))
		}
	}
	t.subs = nil
	if t.pub != nil {
		if err := t.pub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close the Kafka publisher: %w", err))
		}
		t.pub = nil
	}
	return errors.Join(errs...)
}
