package kafka

import (
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// MetaPartition is the metadata key of the partition number a message is
// written to. It equals pipelines.MetaPartition (a test checks it), which
// the distributor sets; it is repeated here so that this building block
// does not import the pipeline layer above it.
const MetaPartition = "partition"

// Marshaler turns pipeline messages into Kafka records like watermill's
// DefaultMarshaler (payload as value, UUID and metadata as headers) and
// chooses each record's partition:
//
//   - a message with MetaPartition p goes to partition p modulo the topic's
//     partition count, so that a distributor configured with as many
//     partitions as the topic has places each trace where it computed;
//   - a message without it is keyed by its UUID and goes to the partition
//     of the FNV-1a hash of the UUID (sarama's hash partitioner): such
//     messages (edges before the distributor) spread over all partitions,
//     and a message published again lands where it did the first time.
//
// A MetaPartition that is not a non-negative decimal number fails the
// publish.
type Marshaler struct {
	wmkafka.DefaultMarshaler
}

// noPartition marks a record for the hash partitioner.
const noPartition = -1

// Marshal implements watermill-kafka's Marshaler.
func (m Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	pm, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	v, ok := msg.Metadata[MetaPartition]
	if !ok {
		pm.Key = sarama.StringEncoder(msg.UUID)
		pm.Partition = noPartition
		return pm, nil
	}
	p, err := strconv.ParseInt(v, 10, 32)
	if err != nil || p < 0 {
		return nil, fmt.Errorf("cannot choose the partition of message %s: metadata %s=%q is not a partition number", msg.UUID, MetaPartition, v)
	}
	pm.Partition = int32(p)
	return pm, nil
}

// partitioner writes a record to the partition Marshal set, modulo the
// topic's partition count, or hashes its key when Marshal set none.
// sarama.NewManualPartitioner cannot be used as is: it refuses a partition
// beyond the topic's count instead of taking the modulo.
type partitioner struct {
	manual sarama.Partitioner
	hash   sarama.Partitioner
}

func newPartitioner(topic string) sarama.Partitioner {
	return partitioner{manual: sarama.NewManualPartitioner(topic), hash: sarama.NewHashPartitioner(topic)}
}

func (p partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if m.Partition == noPartition {
		return p.hash.Partition(m, n)
	}
	if n <= 0 {
		return 0, sarama.ErrInvalidPartition
	}
	m.Partition %= n
	return p.manual.Partition(m, n)
}

// RequiresConsistency is true: a record must go to the partition chosen.
func (partitioner) RequiresConsistency() bool { return true }
