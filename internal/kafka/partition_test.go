package kafka

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// readPartition returns the message UUIDs of every record of one partition,
// read with sarama directly.
func readPartition(t *testing.T, cfg Config, topic string, p int32) []string {
	t.Helper()
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(cfg.Address, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if newest == 0 {
		return nil
	}
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var ids []string
	for int64(len(ids)) < newest {
		select {
		case m := <-pc.Messages():
			for _, h := range m.Headers {
				if string(h.Key) == wmkafka.UUIDHeaderKey {
					ids = append(ids, string(h.Value))
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("partition %d: read %d of %d records", p, len(ids), newest)
		}
	}
	return ids
}

func TestPublishToMetadataPartition(t *testing.T) {
	const n = 6
	b := startBroker(t, n)
	cfg := testConfig(b, n)
	pub, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topic := cfg.TopicFor("distributor")

	want := map[int32][]string{}
	for round := 0; round < 2; round++ {
		for p := 0; p < n; p++ {
			m := message.NewMessage(watermill.NewUUID(), []byte("spans"))
			m.Metadata.Set(MetaPartition, strconv.Itoa(p))
			if err := pub.Publish(topic, m); err != nil {
				t.Fatal(err)
			}
			want[int32(p)] = append(want[int32(p)], m.UUID)
		}
	}
	// Beyond the topic's partition count: modulo.
	m := message.NewMessage(watermill.NewUUID(), nil)
	m.Metadata.Set(MetaPartition, strconv.Itoa(n+2))
	if err := pub.Publish(topic, m); err != nil {
		t.Fatal(err)
	}
	want[2] = append(want[2], m.UUID)

	for p := int32(0); p < n; p++ {
		got := readPartition(t, cfg, topic, p)
		if strings.Join(got, ",") != strings.Join(want[p], ",") {
			t.Errorf("partition %d holds %v, want %v", p, got, want[p])
		}
	}
}

func TestPublishWithoutPartitionHashesUUID(t *testing.T) {
	const n = 8
	b := startBroker(t, n)
	cfg := testConfig(b, n)
	pub, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topic := cfg.TopicFor("otlp")
	// The same UUID twice lands in the same partition, the one sarama's
	// hash partitioner picks for it.
	id := watermill.NewUUID()
	for i := 0; i < 2; i++ {
		if err := pub.Publish(topic, message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	want, err := sarama.NewHashPartitioner(topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(id)}, n)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < n; p++ {
		got := readPartition(t, cfg, topic, p)
		if p == want && len(got) != 2 || p != want && len(got) != 0 {
			t.Errorf("partition %d holds %d records, want 2 in partition %d only", p, len(got), want)
		}
	}
}

func TestPublishRefusesBadPartition(t *testing.T) {
	b := startBroker(t, 2)
	pub, err := NewPublisher(testConfig(b, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, v := range []string{"-1", "x", "99999999999"} {
		m := message.NewMessage(watermill.NewUUID(), nil)
		m.Metadata.Set(MetaPartition, v)
		err := pub.Publish("weft-ingest.bad", m)
		if err == nil || !strings.Contains(err.Error(), "is not a partition number") {
			t.Errorf("partition %q: got %v, want an error saying it is not a partition number", v, err)
		}
	}
}
