package kafka

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/IBM/sarama"
)

// A topic deleted and created again (or a dev broker restarted) starts its
// offsets again: positions saved under the old topic mean nothing in the
// new one. Kafka 2.8 and later give every topic an ID (a UUID) in
// Metadata responses from version 10 on; sarama requests that version only
// when the configured protocol version is 2.8 or later, so the ID is asked
// for with a request of its own whenever the broker says (ApiVersions) it
// answers it, whatever the configured version (the dev broker needs 2.3.1
// for consumer groups, and gives topic IDs). Older brokers give no ID:
// then the ID is empty and a recreated topic is not detected here.

// apiKeyMetadata is the Kafka API key of Metadata requests.
const apiKeyMetadata = 3

// metadataVersionWithTopicID is the first Metadata version with topic IDs.
const metadataVersionWithTopicID = 10

// errNoTopic is returned by topicIDs.fetch for a topic that does not exist.
var errNoTopic = errors.New("topic does not exist")

// topicIDs asks a broker for topic IDs over a connection of its own:
// sarama sends a request only when the configured version has it, so this
// connection is configured with version 2.8, and is used only once the
// broker said it answers Metadata v10.
type topicIDs struct {
	mu     sync.Mutex
	client sarama.Client
	conf   *sarama.Config
	b      *sarama.Broker
}

func newTopicIDs(client sarama.Client) *topicIDs {
	conf := *client.Config()
	conf.Version = sarama.V2_8_0_0
	return &topicIDs{client: client, conf: &conf}
}

// fetch returns the ID of topic in hex, or "" when the broker gives no
// topic IDs.
func (t *topicIDs) fetch(topic string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, err := t.ask(topic)
	if err != nil && !errors.Is(err, errNoTopic) && t.b != nil {
		_ = t.b.Close()
		t.b = nil
	}
	return id, err
}

func (t *topicIDs) ask(topic string) (string, error) {
	if t.b == nil {
		known := t.client.LeastLoadedBroker()
		if known == nil {
			return "", errors.New("cannot ask for the topic ID: no broker known")
		}
		b := sarama.NewBroker(known.Addr())
		if err := b.Open(t.conf); err != nil {
			return "", fmt.Errorf("cannot connect to broker %s: %w", b.Addr(), err)
		}
		versions, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
		if err != nil {
			_ = b.Close()
			return "", fmt.Errorf("cannot ask broker %s for its API versions: %w", b.Addr(), err)
		}
		supported := false
		for _, k := range versions.ApiKeys {
			if k.ApiKey == apiKeyMetadata && k.MaxVersion >= metadataVersionWithTopicID {
				supported = true
			}
		}
		if !supported {
			_ = b.Close()
			return "", nil
		}
		t.b = b
	}
	md, err := t.b.GetMetadata(&sarama.MetadataRequest{Version: metadataVersionWithTopicID, Topics: []string{topic}})
	if err != nil {
		return "", fmt.Errorf("cannot ask broker %s for the ID of topic %s: %w", t.b.Addr(), topic, err)
	}
	for _, tm := range md.Topics {
		if tm.Name != topic {
			continue
		}
		switch {
		case errors.Is(tm.Err, sarama.ErrUnknownTopicOrPartition):
			return "", errNoTopic
		case tm.Err != sarama.ErrNoError:
			return "", fmt.Errorf("cannot read the ID of topic %s: %w", topic, tm.Err)
		}
		if tm.Uuid == (sarama.Uuid{}) {
			return "", nil
		}
		return hex.EncodeToString(tm.Uuid[:]), nil
	}
	return "", errNoTopic
}

// close closes the connection.
func (t *topicIDs) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b != nil {
		_ = t.b.Close()
		t.b = nil
	}
}

// topicIDPrefix starts the offset metadata of a commit made while the
// topic had a known ID: "weft-topic-id:<id>\n<checkpoint>".
const topicIDPrefix = "weft-topic-id:"

// withTopicID returns the offset metadata of checkpoint committed while
// the topic's ID was id.
func withTopicID(id, checkpoint string) string {
	if id == "" {
		return checkpoint
	}
	return topicIDPrefix + id + "\n" + checkpoint
}

// splitTopicID splits committed offset metadata into the topic ID it was
// committed under ("" when none) and the checkpoint.
func splitTopicID(meta string) (id, checkpoint string) {
	rest, ok := strings.CutPrefix(meta, topicIDPrefix)
	if !ok {
		return "", meta
	}
	id, checkpoint, _ = strings.Cut(rest, "\n")
	return id, checkpoint
}
