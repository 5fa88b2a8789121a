package blockbuilder

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/block/blocktest"
	"github.com/weftdb/weft/internal/kafka"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// A topic recreated while a block-builder reads it, its offsets starting
// again: by the dev broker restarted on the same address (a fresh
// in-memory cluster), or deleted and created again. The blocks written
// before are kept as they were, and every record published, before and
// after, is in blocks once.
func TestKafkaTopicRecreatedKeepsBlocks(t *testing.T) {
	t.Run("broker restarted", func(t *testing.T) { testTopicRecreated(t, true) })
	t.Run("topic deleted and created again", func(t *testing.T) { testTopicRecreated(t, false) })
}

func testTopicRecreated(t *testing.T, restartBroker bool) {
	const partitions = 2
	broker, err := kafka.StartDevBroker("127.0.0.1:0", partitions)
	if err != nil {
		t.Fatal(err)
	}
	addr := broker.Addrs()[0]
	defer func() { broker.Close() }()
	cfg := kafka.DefaultConfig()
	cfg.Address = kafka.Brokers{addr}
	cfg.Version = kafka.DevBrokerVersion
	cfg.AutoCreateTopicDefaultPartitions = partitions
	cfg.WriteTimeout, cfg.DialTimeout, cfg.ReadTimeout = 2*time.Second, time.Second, 2*time.Second
	topic := cfg.TopicFor("distributor")

	f := newFixture(t)
	f.cfg.MaxBlockDuration = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	b := New(pipelines.Settings{Metrics: reg}, f.cfg, f.bkt, Hooks{})
	transport := kafka.NewTransport(cfg, watermill.NewStdLogger(false, false)).WithMetrics(reg)
	sub, committer, err := transport.CommitSubscriber("block-builder", topic)
	if err != nil {
		t.Fatal(err)
	}
	b.SetCommitter(committer)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for m := range ch {
			if b.Consume(m) == nil {
				m.Ack()
			} else {
				m.Nack()
			}
		}
	}()
	defer func() {
		_ = sub.Close()
		<-consumed
		stop(t, b)
	}()

	pub, err := kafka.NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	seed := uint64(0)
	publish := func(n int) {
		t.Helper()
		for range n {
			seed++
			td := spangen.Generate(spangen.Options{Seed: seed, Traces: 2, SpansPerTrace: 3})
			deadline := time.Now().Add(20 * time.Second)
			for {
				m := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
				m.Metadata.Set(pipelines.MetaTenant, "a")
				m.Metadata.Set(kafka.MetaPartition, strconv.Itoa(int(seed%partitions)))
				err := pub.Publish(topic, m)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cannot publish for 20s: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Every published span in blocks, each once. The blocks are read
	// once the builder is idle: a meta.json being written is not whole.
	waitStored := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for testutil.ToFloat64(b.m.spans.WithLabelValues("a")) < float64(want) || b.BufferedBytes() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%v spans uploaded after 30s, want %d", testutil.ToFloat64(b.m.spans.WithLabelValues("a")), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		counts, _ := blocktest.SpanCounts(t, f.bkt)
		for span, n := range counts {
			if n != 1 {
				t.Fatalf("span %s in %d blocks", span, n)
			}
		}
		if len(counts) != want {
			t.Fatalf("blocks hold %d spans, want %d", len(counts), want)
		}
	}

	publish(20)
	waitStored(20 * 6)
	before, err := block.ListBlocks(context.Background(), f.bkt, "a")
	if err != nil || len(before) == 0 {
		t.Fatalf("blocks before the restart: %v, %v", before, err)
	}

	if restartBroker {
		broker.Close()
		if broker, err = kafka.StartDevBroker(addr, partitions); err != nil {
			t.Fatal(err)
		}
	} else {
		recreateTopic(t, cfg, topic, partitions)
	}
	publish(20)
	waitStored(40 * 6)
	for _, m := range before {
		got, err := block.ReadMeta(context.Background(), f.bkt, "a", m.BlockID)
		if err != nil || !got.CreatedAt.Equal(m.CreatedAt) || got.TotalSpans != m.TotalSpans {
			t.Fatalf("block %s written before the restart changed: %+v, %v", m.BlockID, got, err)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "weft_kafka_topic_recreated_total"); err != nil || n != 1 {
		t.Fatalf("weft_kafka_topic_recreated_total has %d series (%v), want 1", n, err)
	}
}

// recreateTopic deletes topic and creates it again, empty.
func recreateTopic(t *testing.T, cfg kafka.Config, topic string, partitions int32) {
	t.Helper()
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Metadata.Full = true // the admin client refreshes all topics
	admin, err := sarama.NewClusterAdmin(cfg.Address, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot create topic %s again: %v", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
