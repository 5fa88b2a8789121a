package kafka_test

import (
	"testing"

	"github.com/weftdb/weft/internal/kafka"
	"github.com/weftdb/weft/pipelines"
)

// The publisher reads the partition under the key the distributor writes.
func TestMetaPartitionIsThePipelines(t *testing.T) {
	if kafka.MetaPartition != pipelines.MetaPartition {
		t.Fatalf("kafka.MetaPartition = %q, pipelines.MetaPartition = %q: the publisher would not see the distributor's partition", kafka.MetaPartition, pipelines.MetaPartition)
	}
}
