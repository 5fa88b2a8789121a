// Package pipelines is weft's write path: the YAML format of the graph of
// sources, stages and sinks, its compiler onto a watermill Router, and the
// contract every node kind implements.
//
// Every edge of the graph is a watermill topic named after the node that
// produces it. A message on an edge is one tenant's spans for one partition,
// encoded as OTLP TracesData protobuf, with the tenant and partition in its
// metadata (see Meta*).
package pipelines

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/readiness"
)

// Metadata keys carried by messages on the edges.
const (
	// MetaTenant is the tenant ID the spans belong to, set by the distributor.
	MetaTenant = "tenant"
	// MetaPartition is the decimal partition number, set by the distributor.
	MetaPartition = "partition"
	// MetaOrgID is the raw X-Scope-OrgID header a source received, if any;
	// the distributor turns it into MetaTenant.
	MetaOrgID = "org-id"
	// MetaSourcePartition and MetaSourceOffset are where a message read
	// from another process sits in the transport (decimal partition and
	// offset), for nodes that commit their position themselves.
	MetaSourcePartition = "source-partition"
	MetaSourceOffset    = "source-offset"
	// MetaSourceCheckpoint is the note the node committed last with its
	// position in that partition (see Committer), on every message read
	// from the partition since it was assigned to this process.
	MetaSourceCheckpoint = "source-checkpoint"
)

// Committer records how far a node has made its input durable, for input
// read from another process. Commit says that every record of partition
// before offset is durable downstream and stores checkpoint with it; a
// process that reads the partition after a crash or a rebalance starts at
// offset and finds checkpoint in MetaSourceCheckpoint. Commit fails when
// the partition is no longer this process's. OnRevoke registers fn, called
// with the partitions this process stops reading before another process
// starts: the node must drop what it holds of them uncommitted. Source
// names the log (stable across restarts and processes), for IDs derived
// from positions in it.
type Committer interface {
	Commit(partition int32, offset int64, checkpoint string) error
	OnRevoke(fn func(partitions []int32))
	Source() string
}

// ReplayingSink is a Sink that keeps only a recent window of its input
// (the live-store): when its input comes from another process it reads
// each partition from ReplayWindow ago on every start (and when it takes
// a partition over), and commits nothing. Revoke is called with the
// partitions the process stops reading: the sink must drop what it holds
// of them, which the process taking them over reads again (a span held by
// two processes would be counted twice by a TraceQL metrics query).
type ReplayingSink interface {
	Sink
	ReplayWindow() time.Duration
	Revoke(partitions []int32)
}

// MemoryBounded is a node that holds data in memory on purpose, up to a
// bound it is configured with (the live-store's max_bytes, the
// block-builder's buffered blocks). MemoryBound is that bound in bytes; it
// does not change once the node is created.
type MemoryBounded interface {
	Node
	MemoryBound() int64
}

// CommittingSink is a Sink that commits its input position itself, once
// what it consumed is durable (the block-builder: once it is in a block).
// When its input comes from another process the pipeline calls
// SetCommitter before Start, and acknowledging a message no longer commits
// it; otherwise SetCommitter is never called.
type CommittingSink interface {
	Sink
	SetCommitter(Committer)
}

// DataType names what flows on an edge, so the compiler can refuse a node
// whose input does not fit the output it reads from.
type DataType string

// DataTraces is OTLP TracesData protobuf, one tenant and partition per message
// once it has passed the distributor.
const DataTraces DataType = "otlp_traces"

// Role says where a node sits in the graph.
type Role int

const (
	// RoleSource nodes take data in from outside and publish it; no `from`.
	RoleSource Role = iota
	// RoleStage nodes read messages, transform them and publish the result.
	RoleStage
	// RoleSink nodes read messages and keep them; nothing reads from a sink.
	RoleSink
)

func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleStage:
		return "stage"
	default:
		return "sink"
	}
}

// Settings is what the compiler injects into every node it creates.
type Settings struct {
	// Name is the node's name in the pipeline file.
	Name string
	// Logger is already tagged with the node name.
	Logger *slog.Logger
	// Metrics is where the node registers its Prometheus collectors.
	Metrics prometheus.Registerer
	// Output is how a source publishes into the graph; nil for stages and sinks.
	Output Output
	// Readiness is where a node adds the checks that make the process not
	// ready while they fail (see internal/readiness); may be nil.
	Readiness *readiness.Set
}

// Factory creates the nodes of one kind. Factories are listed explicitly in
// cmd/weft; nothing registers itself.
type Factory interface {
	// Type is the kind as written in the pipeline file, such as "otlp".
	Type() string
	// Role says whether the kind is a source, a stage or a sink.
	Role() Role
	// Input is the data type the node reads; empty for sources.
	Input() DataType
	// Output is the data type the node publishes; empty for sinks.
	Output() DataType
	// DefaultConfig returns a new pointer to the kind's config struct filled
	// with defaults; the node's `config:` block is decoded on top of it.
	DefaultConfig() any
	// Create builds a node from a config returned by DefaultConfig and
	// validated. It must not start goroutines or open ports: Start does.
	Create(set Settings, cfg any) (Node, error)
}

// Node is the lifecycle every node has. Start must return promptly and keep
// long-running work on its own goroutines; Shutdown must stop intake, finish
// what is in flight within ctx, and be safe to call without Start.
type Node interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Stage transforms one message into zero or more messages. Returning an
// error fails the message: with a push waiting on it (in-process edges) the
// error goes back to the client, otherwise the message is redelivered.
// Errors should carry a gRPC status code (google.golang.org/grpc/status).
type Stage interface {
	Node
	Process(msg *message.Message) ([]*message.Message, error)
}

// Sink keeps one message. The error contract is that of Stage.
type Sink interface {
	Node
	Consume(msg *message.Message) error
}

// Output publishes a source's message into the graph.
type Output interface {
	// Push publishes msg and waits until every node of this process that the
	// message reaches has handled it (or the transport acknowledged it, for
	// edges that leave the process), or until ctx ends. The returned Outcome
	// says what happened downstream; err is set only when the push could not
	// be completed (ctx ended, pipeline closed), with a gRPC status code.
	Push(ctx context.Context, msg *message.Message) (*Outcome, error)
}
