package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// producedBatch is one record batch of a produce request the broker saw.
type producedBatch struct {
	request   int // index of the produce request that carried it
	partition int32
	codec     int8 // attributes & 7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
	records   int32
}

// watchProduce records every record batch written to topic on b.
func watchProduce(t *testing.T, b *DevBroker, topic string) func() []producedBatch {
	t.Helper()
	var (
		mu       sync.Mutex
		batches  []producedBatch
		requests int
	)
	b.cluster.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		seen := false
		for _, tp := range req.Topics {
			if tp.Topic != topic {
				continue
			}
			seen = true
			for _, p := range tp.Partitions {
				for raw := p.Records; len(raw) > 0; {
					var rb kmsg.RecordBatch
					if err := rb.ReadFrom(raw); err != nil {
						t.Errorf("cannot read a record batch of partition %d: %v", p.Partition, err)
						break
					}
					batches = append(batches, producedBatch{request: requests, partition: p.Partition, codec: int8(rb.Attributes & 0x7), records: rb.NumRecords})
					raw = raw[12+int(rb.Length):] // base offset and length, then Length bytes
				}
			}
		}
		if seen {
			requests++
		}
		return nil, nil, false // observe only: the broker handles it
	})
	return func() []producedBatch {
		mu.Lock()
		defer mu.Unlock()
		return append([]producedBatch(nil), batches...)
	}
}

// TestPublishCompressesWithTheConfiguredCodec checks that the record
// batches on the broker carry producer_compression's codec, and that a
// consumer reads them back whole.
func TestPublishCompressesWithTheConfiguredCodec(t *testing.T) {
	want := map[string]int8{CompressionNone: 0, CompressionGzip: 1, CompressionSnappy: 2, CompressionLZ4: 3, CompressionZstd: 4}
	for _, codec := range []string{CompressionNone, CompressionLZ4, CompressionZstd, CompressionSnappy, CompressionGzip} {
		t.Run(codec, func(t *testing.T) {
			b := startBroker(t, 2)
			cfg := testConfig(b, 2)
			cfg.ProducerCompression = codec
			if codec == CompressionZstd {
				cfg.Version = "2.1.0" // zstd needs it; the dev broker takes it for producing
			}
			topic := "codec-" + codec
			batches := watchProduce(t, b, topic)
			pub, err := NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			payload := []byte(fmt.Sprintf("%0100d", 7)) // compressible
			for i := range 3 {
				m := message.NewMessage(watermill.NewUUID(), payload)
				m.Metadata.Set(MetaPartition, strconv.Itoa(i%2))
				if err := pub.Publish(topic, m); err != nil {
					t.Fatal(err)
				}
			}
			got := batches()
			if len(got) == 0 {
				t.Fatal("the broker saw no record batch")
			}
			for _, bt := range got {
				if bt.codec != want[codec] {
					t.Errorf("a batch of partition %d has codec %d, want %d (%s)", bt.partition, bt.codec, want[codec], codec)
				}
			}

			// And it reads back: the consumer decompresses.
			rcfg := cfg
			rcfg.Version = DevBrokerVersion
			sub, err := newSubscriber(rcfg, "codec", nil, fastGroups)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				select {
				case m := <-ch:
					if string(m.Payload) != string(payload) {
						t.Errorf("read back %q, want %q", m.Payload, payload)
					}
					m.Ack()
				case <-ctx.Done():
					t.Fatal("the records did not read back")
				}
			}
		})
	}
}

// TestPublishSendsAllMessagesInOneRequest checks that one Publish of
// several messages reaches the broker as one produce request holding them
// all (one batch per partition), not a request per message.
func TestPublishSendsAllMessagesInOneRequest(t *testing.T) {
	b := startBroker(t, 4)
	cfg := testConfig(b, 4)
	cfg.ProducerLinger = 50 * time.Millisecond // time enough to gather them on a busy machine
	topic := "batched"
	batches := watchProduce(t, b, topic)
	pub, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// A first publish creates the topic and connects.
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("warm-up"))); err != nil {
		t.Fatal(err)
	}
	before := len(batches())
	var msgs []*message.Message
	for i := range 12 {
		m := message.NewMessage(watermill.NewUUID(), []byte("span bytes "+strconv.Itoa(i)))
		m.Metadata.Set(MetaPartition, strconv.Itoa(i%4))
		msgs = append(msgs, m)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
	got := batches()[before:]
	requests := map[int]bool{}
	perPartition := map[int32]int32{}
	for _, bt := range got {
		requests[bt.request] = true
		perPartition[bt.partition] += bt.records
	}
	if len(requests) != 1 {
		t.Errorf("12 messages went in %d produce requests (%+v), want 1", len(requests), got)
	}
	for p := range int32(4) {
		if perPartition[p] != 3 {
			t.Errorf("partition %d got %d records, want 3 (batches %+v)", p, perPartition[p], got)
		}
	}
}

// TestLingerGathersConcurrentPublishes checks that with producer_linger
// concurrent publishes share produce requests and record batches.
func TestLingerGathersConcurrentPublishes(t *testing.T) {
	b := startBroker(t, 1)
	cfg := testConfig(b, 1)
	cfg.ProducerLinger = 200 * time.Millisecond
	topic := "lingered"
	batches := watchProduce(t, b, topic)
	pub, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("warm-up"))); err != nil {
		t.Fatal(err)
	}
	before := len(batches())
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			m := message.NewMessage(watermill.NewUUID(), []byte("push "+strconv.Itoa(i)))
			m.Metadata.Set(MetaPartition, "0")
			errs <- pub.Publish(topic, m)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := batches()[before:]
	var records int32
	for _, bt := range got {
		records += bt.records
	}
	if records != n {
		t.Fatalf("the broker saw %d records, want %d", records, n)
	}
	if len(got) > 2 {
		t.Errorf("%d concurrent publishes went in %d batches with a 200ms linger, want 1 or 2: %+v", n, len(got), got)
	}
}
