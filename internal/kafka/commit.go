package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/pipelines"
)

// This file is the subscriber of nodes that commit their position
// themselves (pipelines.CommittingSink, the block-builder). watermill-kafka
// hands out a partition's next message only once the previous one is
// acked, and commits what is acked; a block-builder must take many
// messages before one block is uploaded, and must commit only then. So
// this subscriber runs its own sarama consumer group with auto-commit off:
// an ack only moves on to the next message, and Commit marks and commits
// an offset through the session that owns the partition.
//
// It also watches the topic's ID (see topicid.go): when the topic is
// recreated, the session ends, the partitions are revoked and read again
// from the start of the new topic, and an offset committed under the old
// ID is not used.

// topicCheckInterval is how often the topic's ID is checked.
const topicCheckInterval = 2 * time.Second

// ErrNotOwned is returned by Commit for a partition this process does not
// read (any more).
var ErrNotOwned = errors.New("partition not assigned to this process")

// CommitSubscriber reads one topic in a consumer group and commits only
// when told. It implements message.Subscriber and pipelines.Committer.
type CommitSubscriber struct {
	cfg    Config
	group  string
	topic  string
	sc     *sarama.Config
	topics *topicCreator
	logger watermill.LoggerAdapter

	// startFrom, when set, chooses where each assigned partition is read
	// from (a replay subscriber); otherwise the committed offset.
	startFrom func(client sarama.Client, partition int32) (int64, error)

	mu       sync.Mutex
	client   sarama.Client
	cg       sarama.ConsumerGroup
	sessions map[int32]sarama.ConsumerGroupSession // partitions claimed now
	// topicID is the topic's ID as last seen ("" when unknown); sessID the
	// one the current session started with, written with its commits.
	topicID, sessID string
	ids             *topicIDs
	recreated       *prometheus.CounterVec // counts ID changes; may be nil
	endSession      context.CancelFunc     // ends the current session
	checkpoints     map[int32]string       // committed with each claimed partition
	onRevoke        []func([]int32)
	closing         chan struct{}
	closed          bool
	wg              sync.WaitGroup
}

// NewCommitSubscriber returns a subscriber of topic in consumer group
// group. Nothing connects until Subscribe.
func NewCommitSubscriber(cfg Config, group, topic string, logger watermill.LoggerAdapter) (*CommitSubscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create the Kafka subscriber: %w", err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		return nil, err
	}
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Return.Errors = true
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &CommitSubscriber{
		cfg: cfg, group: group, topic: topic, sc: sc, topics: newTopicCreator(cfg, sc), logger: logger,
		sessions: map[int32]sarama.ConsumerGroupSession{}, checkpoints: map[int32]string{}, closing: make(chan struct{}),
	}, nil
}

// NewReplaySubscriber returns a subscriber of topic in consumer group
// group that reads each partition it is assigned from the first record
// written in the last window, and never commits: a reader that keeps only
// a recent window in memory (the live-store) rebuilds it on every start
// and takes over a partition of a member that left with its recent past.
func NewReplaySubscriber(cfg Config, group, topic string, window time.Duration, logger watermill.LoggerAdapter) (*CommitSubscriber, error) {
	s, err := NewCommitSubscriber(cfg, group, topic, logger)
	if err != nil {
		return nil, err
	}
	s.startFrom = func(client sarama.Client, p int32) (int64, error) {
		since := time.Now().Add(-window).UnixMilli()
		off, err := client.GetOffset(topic, p, since)
		if err != nil {
			return 0, fmt.Errorf("cannot find the offset of %s partition %d at %s: %w", topic, p, time.UnixMilli(since).UTC().Format(time.RFC3339), err)
		}
		if off < 0 { // nothing written since then
			if off, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return 0, fmt.Errorf("cannot find the newest offset of %s partition %d: %w", topic, p, err)
			}
		}
		return off, nil
	}
	return s, nil
}

// Source names the topic, for IDs derived from positions in it. It does
// not name the topic's ID: a block rebuilt after the ID was first seen
// must get the ID it had.
func (s *CommitSubscriber) Source() string { return "kafka/" + s.topic }

// OnRevoke registers fn, called with the partitions this process stops
// reading, before the group hands them to another member.
func (s *CommitSubscriber) OnRevoke(fn func([]int32)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRevoke = append(s.onRevoke, fn)
}

// Commit commits offset (the next record to read) and checkpoint for
// partition, through the session that owns it.
func (s *CommitSubscriber) Commit(partition int32, offset int64, checkpoint string) error {
	s.mu.Lock()
	sess, id := s.sessions[partition], s.sessID
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("cannot commit offset %d of %s partition %d: %w", offset, s.topic, partition, ErrNotOwned)
	}
	sess.MarkOffset(s.topic, partition, offset, withTopicID(id, checkpoint))
	sess.Commit()
	return nil
}

// Subscribe starts reading; topic must be the subscriber's.
func (s *CommitSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic != s.topic {
		return nil, fmt.Errorf("cannot subscribe to topic %q: this subscriber reads %q", topic, s.topic)
	}
	brokers := strings.Join(s.cfg.Address, ",")
	if err := s.topics.ensure(topic); err != nil {
		return nil, fmt.Errorf("cannot subscribe to topic %q on Kafka brokers %s: %w", topic, brokers, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("cannot subscribe: the subscriber is closed")
	}
	if s.cg != nil {
		return nil, fmt.Errorf("cannot subscribe to topic %q twice", topic)
	}
	client, err := sarama.NewClient(s.cfg.Address, s.sc)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Kafka brokers %s: %w", brokers, err)
	}
	cg, err := sarama.NewConsumerGroupFromClient(s.group, client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("cannot join consumer group %q on Kafka brokers %s: %w", s.group, brokers, err)
	}
	s.client, s.cg = client, cg
	ids := newTopicIDs(client)
	s.ids = ids
	if id, err := ids.fetch(topic); err == nil {
		s.topicID = id
	}
	out := make(chan *message.Message)
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		defer ids.close()
		s.watchTopicID(ctx, ids)
	}()
	go func() {
		defer s.wg.Done()
		<-s.closing
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		defer close(out)
		h := &commitHandler{s: s, out: out, ctx: ctx}
		for ctx.Err() == nil {
			sctx, end := context.WithCancel(ctx)
			s.mu.Lock()
			s.endSession = end
			s.mu.Unlock()
			err := cg.Consume(sctx, []string{topic}, h)
			end()
			if err != nil && ctx.Err() == nil {
				s.logger.Error("Kafka consumer group stopped; rejoining", err, watermill.LogFields{"group": s.group, "topic": topic})
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			s.logger.Debug("Kafka consumer group error", watermill.LogFields{"group": s.group, "err": err.Error()})
		}
	}()
	return out, nil
}

// watchTopicID checks the topic's ID every topicCheckInterval until ctx
// ends; when it changes (the topic was recreated), it ends the session:
// the partitions are revoked and read again in a new one.
func (s *CommitSubscriber) watchTopicID(ctx context.Context, ids *topicIDs) {
	t := time.NewTicker(topicCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id, err := ids.fetch(s.topic)
		if err != nil || id == "" {
			continue // unreachable, deleted, or no IDs: checked again later
		}
		s.mu.Lock()
		old, end := s.sessID, s.endSession
		s.topicID = id
		s.mu.Unlock()
		if old != "" && old != id && end != nil {
			s.countRecreated(old, id)
			end()
		}
	}
}

// countRecreated counts and logs that the topic's ID changed from old to id.
func (s *CommitSubscriber) countRecreated(old, id string) {
	if s.recreated != nil {
		s.recreated.WithLabelValues(s.topic, s.group).Inc()
	}
	s.logger.Error("Kafka topic was recreated (its ID changed): reading it again from its start", nil,
		watermill.LogFields{"topic": s.topic, "old_topic_id": old, "topic_id": id, "group": s.group})
}

// Close stops reading and leaves the group; it is idempotent.
func (s *CommitSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	cg, client := s.cg, s.client
	s.mu.Unlock()
	s.wg.Wait()
	var errs []error
	if cg != nil {
		errs = append(errs, cg.Close())
	}
	if client != nil && !client.Closed() {
		errs = append(errs, client.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot close the Kafka subscriber: %w", err)
	}
	return nil
}

// commitHandler is the sarama.ConsumerGroupHandler of a CommitSubscriber.
type commitHandler struct {
	s   *CommitSubscriber
	out chan<- *message.Message
	ctx context.Context
}

func (h *commitHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	// The ID of the topic this session reads, asked now: the session may
	// start on a topic recreated since the watcher last looked.
	if id, err := h.s.ids.fetch(h.s.topic); err == nil && id != "" {
		if old := h.s.topicID; old != "" && old != id {
			h.s.countRecreated(old, id)
		}
		h.s.topicID = id
	}
	h.s.sessID = h.s.topicID
	for _, p := range sess.Claims()[h.s.topic] {
		h.s.sessions[p] = sess
		if h.s.startFrom == nil {
			// Read from the committed offset, with its checkpoint, unless
			// it was committed under another ID of the topic: then from
			// the start of this one.
			meta, err := h.committedMeta(p)
			if err != nil {
				return err
			}
			id, checkpoint := splitTopicID(meta)
			if id != "" && h.s.sessID != "" && id != h.s.sessID {
				off, err := h.s.client.GetOffset(h.s.topic, p, sarama.OffsetOldest)
				if err != nil {
					return fmt.Errorf("cannot find the oldest offset of %s partition %d: %w", h.s.topic, p, err)
				}
				h.s.logger.Error("offset committed for an earlier topic of the same name (it was recreated); reading from the start", nil,
					watermill.LogFields{"topic": h.s.topic, "partition": p, "committed_topic_id": id, "topic_id": h.s.sessID})
				sess.ResetOffset(h.s.topic, p, off, "")
				checkpoint = ""
			}
			h.s.checkpoints[p] = checkpoint
		}
		if h.s.startFrom != nil {
			off, err := h.s.startFrom(h.s.client, p)
			if err != nil {
				return err
			}
			sess.ResetOffset(h.s.topic, p, off, "")
		}
	}
	return nil
}

// Cleanup runs when the session ends (rebalance, close): the partitions
// are revoked.
func (h *commitHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.s.mu.Lock()
	var revoked []int32
	for p, ps := range h.s.sessions {
		if ps == sess {
			revoked = append(revoked, p)
			delete(h.s.sessions, p)
		}
	}
	fns := append([]func([]int32){}, h.s.onRevoke...)
	h.s.mu.Unlock()
	if len(revoked) > 0 {
		for _, fn := range fns {
			fn(revoked)
		}
	}
	return nil
}

// ConsumeClaim hands the partition's records out one at a time, each
// after the previous one was acked; a nacked record is handed out again.
func (h *commitHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.s.mu.Lock()
	checkpoint := h.s.checkpoints[claim.Partition()]
	h.s.mu.Unlock()
	partition := strconv.Itoa(int(claim.Partition()))
	for {
		var km *sarama.ConsumerMessage
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			km = m
		case <-sess.Context().Done():
			return nil
		}
		for {
			msg, err := Marshaler{}.Unmarshal(km)
			if err != nil {
				return fmt.Errorf("cannot read record %d of %s partition %d: %w", km.Offset, km.Topic, km.Partition, err)
			}
			msg.Metadata.Set(pipelines.MetaSourcePartition, partition)
			msg.Metadata.Set(pipelines.MetaSourceOffset, strconv.FormatInt(km.Offset, 10))
			msg.Metadata.Set(pipelines.MetaSourceCheckpoint, checkpoint)
			ctx, cancel := context.WithCancel(sess.Context())
			msg.SetContext(ctx)
			select {
			case h.out <- msg:
			case <-sess.Context().Done():
				cancel()
				return nil
			}
			acked := false
			select {
			case <-msg.Acked():
				acked = true
			case <-msg.Nacked():
			case <-sess.Context().Done():
				cancel()
				return nil
			}
			cancel()
			if acked {
				break
			}
		}
	}
}

// committedMeta reads the metadata committed with the partition's offset
// (empty when none).
func (h *commitHandler) committedMeta(partition int32) (string, error) {
	om, err := sarama.NewOffsetManagerFromClient(h.s.group, h.s.client)
	if err != nil {
		return "", fmt.Errorf("cannot read the committed offset of %s partition %d: %w", h.s.topic, partition, err)
	}
	defer om.Close()
	pom, err := om.ManagePartition(h.s.topic, partition)
	if err != nil {
		return "", fmt.Errorf("cannot read the committed offset of %s partition %d: %w", h.s.topic, partition, err)
	}
	defer pom.AsyncClose()
	_, meta := pom.NextOffset()
	return meta, nil
}
