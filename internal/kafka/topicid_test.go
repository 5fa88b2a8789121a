package kafka

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// The dev broker gives topic IDs (Metadata v10) although clients speak
// DevBrokerVersion; a recreated topic gets another ID.
func TestFetchTopicID(t *testing.T) {
	b := startBroker(t, 2)
	cfg := testConfig(b, 2)
	pub, err := NewPublisher(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	topic := cfg.TopicFor("x")
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("a"))); err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(cfg.Address, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ids := newTopicIDs(client)
	defer ids.close()
	id, err := ids.fetch(topic)
	if err != nil || len(id) != 32 {
		t.Fatalf("topic ID %q, %v", id, err)
	}
	if _, err := ids.fetch("missing"); err != errNoTopic {
		t.Fatalf("missing topic: %v", err)
	}
	sc.Metadata.Full = true
	admin, err := sarama.NewClusterAdmin(cfg.Address, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	again, err := ids.fetch(topic)
	if err != nil || len(again) != 32 || again == id {
		t.Fatalf("topic ID after recreating %q (before %q), %v", again, id, err)
	}
	if gotID, cp := splitTopicID(withTopicID(id, `{"a":1}`)); gotID != id || cp != `{"a":1}` {
		t.Fatalf("split: %q %q", gotID, cp)
	}
	if gotID, cp := splitTopicID(`{"a":1}`); gotID != "" || cp != `{"a":1}` {
		t.Fatalf("split without ID: %q %q", gotID, cp)
	}
}
