package pipelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/readiness"
)

// Options tell Compile what this process runs.
type Options struct {
	// Targets are the components this process runs; "all" runs every node.
	Targets []string
	// Logger receives the pipeline's own logs.
	Logger *slog.Logger
	// Metrics is where nodes and the pipeline register their collectors.
	Metrics prometheus.Registerer
	// CloseTimeout bounds how long Shutdown waits for messages in flight.
	CloseTimeout time.Duration
	// Transport carries the edges whose two ends run in different
	// processes (internal/kafka). Nil refuses such edges.
	Transport Transport
	// AllowEmpty accepts targets that run no node (a querier): the
	// pipeline then does nothing. Otherwise that is an error.
	AllowEmpty bool
	// Readiness is passed to every node in its Settings; may be nil.
	Readiness *readiness.Set
}

// Transport carries pipeline edges between processes. Topic(node) is where
// the output of node goes; Publisher publishes there and returns only once
// the transport holds the messages durably (a push is acknowledged after
// it); Subscriber(node) reads for node, each node its own consumer group,
// and redelivers what its handler nacks. Close releases what the transport
// opened; the pipeline calls it last.
type Transport interface {
	Topic(node string) string
	Publisher() (message.Publisher, error)
	Subscriber(node string) (message.Subscriber, error)
	// CommitSubscriber is Subscriber for a CommittingSink reading topic:
	// acknowledging a message moves on to the next without committing;
	// the Committer commits.
	CommitSubscriber(node, topic string) (message.Subscriber, Committer, error)
	// ReplaySubscriber is Subscriber for a ReplayingSink: each partition
	// is read from window ago, and nothing is committed. onRevoke is
	// called with the partitions the process stops reading (another
	// process reads them again from window ago).
	ReplaySubscriber(node, topic string, window time.Duration, onRevoke func(partitions []int32)) (message.Subscriber, error)
	Close() error
}

// Pipeline is a compiled graph, ready to start.
type Pipeline struct {
	logger    *slog.Logger
	transport Transport
	closing   chan struct{} // closed when Shutdown begins
	pubsub    *gochannel.GoChannel
	router    *message.Router
	nodes     []runNode // dependency order: sources first
	started   []runNode
	runErr    chan error
}

type runNode struct {
	name string
	role Role
	node Node
}

// MemoryBound is the sum of the bounds of the nodes that run here and hold
// data in memory on purpose (MemoryBounded).
func (p *Pipeline) MemoryBound() int64 {
	var n int64
	for _, rn := range p.nodes {
		if mb, ok := rn.node.(MemoryBounded); ok {
			n += mb.MemoryBound()
		}
	}
	return n
}

// Compile checks spec against reg and builds the nodes that run in this
// process, wiring their edges onto a watermill Router over the in-process
// gochannel pub/sub. Every problem of the graph is reported at once. Nothing
// starts until Start.
func Compile(spec *Spec, reg Registry, opts Options) (*Pipeline, error) {
	nodes, err := spec.check(reg)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CloseTimeout == 0 {
		opts.CloseTimeout = 30 * time.Second
	}
	local := func(target string) bool { return contains(opts.Targets, "all") || contains(opts.Targets, target) }

	// Edges that leave the process need a transport between processes.
	var errs []error
	if opts.Transport == nil {
		for _, n := range nodes {
			for j, from := range n.spec.From {
				src := findNode(nodes, from)
				if local(n.spec.Target) != local(src.spec.Target) {
					errs = append(errs, fmt.Errorf("%s:%d: %s.from[%d]: the edge from %q (target %s) to %q (target %s) crosses processes, which needs the Kafka transport: set ingest.kafka, or run -target=all",
						spec.File, n.spec.fromLines[j], n.spec.Path(), j, from, src.spec.Target, n.spec.Name, n.spec.Target))
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	wmLogger := watermill.NewSlogLoggerWithLevelMapping(opts.Logger.With("component", "watermill"), map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug, // router start/stop chatter
	})
	pubsub := gochannel.NewGoChannel(gochannel.Config{PreserveContext: true}, wmLogger)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: opts.CloseTimeout}, wmLogger)
	if err != nil {
		return nil, fmt.Errorf("cannot create the router: %w", err)
	}
	p := &Pipeline{logger: opts.Logger, pubsub: pubsub, router: router, runErr: make(chan error, 1), transport: opts.Transport, closing: make(chan struct{})}

	// fanout[topic] is how many local handlers read a topic: each message
	// published there is that many deliveries to wait for. remote[topic]
	// says a node of another process reads it: it goes to the transport.
	fanout := map[string]int{}
	remote := map[string]bool{}
	for _, n := range nodes {
		for _, from := range n.spec.From {
			switch src := findNode(nodes, from); {
			case local(n.spec.Target) && local(src.spec.Target):
				fanout[from]++
			case !local(n.spec.Target) && local(src.spec.Target):
				remote[from] = true
			}
		}
	}
	var remotePub message.Publisher
	if len(remote) > 0 {
		if remotePub, err = opts.Transport.Publisher(); err != nil {
			return nil, fmt.Errorf("cannot create the publisher of the Kafka transport: %w", err)
		}
	}
	remoteOut := func(node string) *remoteOutput {
		if !remote[node] {
			return nil
		}
		return &remoteOutput{pub: remotePub, topic: opts.Transport.Topic(node)}
	}
	m := newPipelineMetrics(opts.Metrics)
	for _, n := range nodes {
		if !local(n.spec.Target) {
			continue
		}
		set := Settings{
			Name:      n.spec.Name,
			Logger:    opts.Logger.With("node", n.spec.Name),
			Metrics:   opts.Metrics,
			Readiness: opts.Readiness,
		}
		if n.factory.Role() == RoleSource {
			set.Output = &output{pubsub: pubsub, topic: n.spec.Name, fanout: fanout[n.spec.Name], remote: remoteOut(n.spec.Name)}
		}
		node, err := n.factory.Create(set, n.config)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: cannot create node: %w", spec.File, n.spec.line, n.spec.Path(), err)
		}
		h := &handler{name: n.spec.Name, out: n.spec.Name, fanout: fanout[n.spec.Name], pubsub: pubsub, remote: remoteOut(n.spec.Name), m: m}
		switch v := node.(type) {
		case Stage:
			h.stage = v
		case Sink:
			h.sink = v
		}
		if n.factory.Role() != RoleSource && h.stage == nil && h.sink == nil {
			return nil, fmt.Errorf("%s: kind %q built a node that is neither a Stage nor a Sink", n.spec.Path(), n.spec.Kind)
		}
		for _, from := range n.spec.From {
			if local(findNode(nodes, from).spec.Target) {
				router.AddConsumerHandler(n.spec.Name+"<-"+from, from, pubsub, h.handle)
				continue
			}
			var sub message.Subscriber
			if cs, ok := node.(CommittingSink); ok {
				var c Committer
				if sub, c, err = opts.Transport.CommitSubscriber(n.spec.Name, opts.Transport.Topic(from)); err == nil {
					cs.SetCommitter(c)
				}
			} else if rs, ok := node.(ReplayingSink); ok {
				sub, err = opts.Transport.ReplaySubscriber(n.spec.Name, opts.Transport.Topic(from), rs.ReplayWindow(), rs.Revoke)
			} else {
				sub, err = opts.Transport.Subscriber(n.spec.Name)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: cannot subscribe to %q through the Kafka transport: %w", n.spec.Path(), from, err)
			}
			router.AddConsumerHandler(n.spec.Name+"<-"+from, opts.Transport.Topic(from), sub, h.handleRemote(p.closing))
		}
		p.nodes = append(p.nodes, runNode{name: n.spec.Name, role: n.factory.Role(), node: node})
	}
	if len(p.nodes) == 0 && !opts.AllowEmpty {
		return nil, fmt.Errorf("%s: no node of the pipeline runs in targets %v", spec.File, opts.Targets)
	}
	return p, nil
}

func findNode(nodes []checked, name string) checked {
	for _, n := range nodes {
		if n.spec.Name == name {
			return n
		}
	}
	return checked{}
}

// Start starts sinks first, then stages, then the router, then sources, so
// that nothing is published before its readers run. On error everything
// already started is shut down again.
func (p *Pipeline) Start(ctx context.Context) error {
	if len(p.nodes) == 0 {
		return nil // nothing runs here
	}
	// Reverse dependency order: readers before the nodes they read from.
	for i := len(p.nodes) - 1; i >= 0; i-- {
		n := p.nodes[i]
		if n.role == RoleSource {
			continue
		}
		if err := n.node.Start(ctx); err != nil {
			p.shutdownStarted(ctx)
			return fmt.Errorf("cannot start node %q: %w", n.name, err)
		}
		p.started = append(p.started, n)
	}
	go func() { p.runErr <- p.router.Run(context.Background()) }()
	select {
	case <-p.router.Running():
	case err := <-p.runErr:
		p.shutdownStarted(ctx)
		return fmt.Errorf("cannot run the pipeline router: %w", err)
	case <-ctx.Done():
		_ = p.router.Close()
		p.shutdownStarted(ctx)
		return fmt.Errorf("cannot start the pipeline: %w", ctx.Err())
	}
	for i := len(p.nodes) - 1; i >= 0; i-- {
		n := p.nodes[i]
		if n.role != RoleSource {
			continue
		}
		if err := n.node.Start(ctx); err != nil {
			_ = p.Shutdown(ctx)
			return fmt.Errorf("cannot start node %q: %w", n.name, err)
		}
		p.started = append(p.started, n)
	}
	return nil
}

// Shutdown stops the sources (no more intake, pushes in flight finish),
// then drains the router, then stops stages and sinks.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	if len(p.nodes) == 0 {
		return errors.Join(p.pubsub.Close(), p.router.Close())
	}
	var errs []error
	select {
	case <-p.closing:
	default:
		close(p.closing)
	}
	for i := len(p.started) - 1; i >= 0; i-- {
		n := p.started[i]
		if n.role == RoleSource {
			if err := n.node.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot stop node %q: %w", n.name, err))
			}
		}
	}
	if err := p.router.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot drain the pipeline: %w", err))
	}
	for i := len(p.started) - 1; i >= 0; i-- {
		n := p.started[i]
		if n.role != RoleSource {
			if err := n.node.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot stop node %q: %w", n.name, err))
			}
		}
	}
	p.started = nil
	if err := p.pubsub.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close the in-process pub/sub: %w", err))
	}
	if p.transport != nil {
		if err := p.transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close the Kafka transport: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *Pipeline) shutdownStarted(ctx context.Context) {
	for i := len(p.started) - 1; i >= 0; i-- {
		_ = p.started[i].node.Shutdown(ctx)
	}
	p.started = nil
}

// remoteOutput publishes a node's output to the nodes of other processes.
type remoteOutput struct {
	pub   message.Publisher
	topic string
}

// publish returns once the transport holds msgs, or an Unavailable error.
func (r *remoteOutput) publish(node string, msgs ...*message.Message) error {
	if r == nil {
		return nil
	}
	if err := r.pub.Publish(r.topic, msgs...); err != nil {
		return status.Errorf(codes.Unavailable, "cannot publish the output of node %q to other processes: %v", node, err)
	}
	return nil
}

// output is the Output of a source node.
type output struct {
	pubsub message.Publisher
	topic  string
	fanout int
	remote *remoteOutput
}

func (o *output) Push(ctx context.Context, msg *message.Message) (*Outcome, error) {
	oc := newOutcome()
	ctx = context.WithValue(ctx, outcomeKey{}, oc)
	msg.SetContext(ctx)
	if err := o.remote.publish(o.topic, msg); err != nil {
		return nil, err
	}
	oc.add(o.fanout)
	if o.fanout == 0 {
		return oc, nil
	}
	if err := o.pubsub.Publish(o.topic, msg); err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot push into the pipeline: %v", err)
	}
	if err := oc.wait(ctx); err != nil {
		return nil, err
	}
	return oc, nil
}

// handler is the shared middleware around every stage and sink: it recovers
// panics, counts and times messages, publishes a stage's output, and settles
// the push's Outcome (or nacks for redelivery when there is none).
type handler struct {
	name   string
	out    string
	fanout int
	pubsub message.Publisher
	remote *remoteOutput
	stage  Stage
	sink   Sink
	m      *pipelineMetrics
}

func (h *handler) handle(msg *message.Message) error {
	oc := OutcomeFrom(msg.Context())
	start := time.Now()
	err := h.run(msg, oc)
	h.m.duration.WithLabelValues(h.name).Observe(time.Since(start).Seconds())
	result := "ok"
	if err != nil {
		result = status.Code(err).String()
	}
	h.m.messages.WithLabelValues(h.name, result).Inc()
	if oc == nil {
		return err // no push waits on it: nack, the transport redelivers
	}
	if err != nil {
		oc.fail(statusOf(err))
	}
	oc.deliveryDone()
	return nil
}

// Backoff between attempts at a message read from another process.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 5 * time.Second
)

// handleRemote handles messages read from the transport: no push waits on
// them, so a failure is retried here, with backoff, until it succeeds or
// the pipeline shuts down (then the message is nacked and the transport
// delivers it again later, to this process or another). Retrying in place
// keeps the partition's order and makes a failing node slow its input
// down instead of spinning on redeliveries.
func (h *handler) handleRemote(closing <-chan struct{}) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		wait := retryFirst
		for {
			start := time.Now()
			err := h.run(msg, nil)
			h.m.duration.WithLabelValues(h.name).Observe(time.Since(start).Seconds())
			if err == nil {
				h.m.messages.WithLabelValues(h.name, "ok").Inc()
				return nil
			}
			h.m.messages.WithLabelValues(h.name, status.Code(err).String()).Inc()
			h.m.retries.WithLabelValues(h.name).Inc()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-closing:
				t.Stop()
				return err
			case <-msg.Context().Done():
				t.Stop()
				return err
			}
			wait = min(2*wait, retryMax)
		}
	}
}

func (h *handler) run(msg *message.Message, oc *Outcome) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "node %q failed on a message: %v", h.name, r)
		}
	}()
	if h.sink != nil {
		return h.sink.Consume(msg)
	}
	out, err := h.stage.Process(msg)
	if err != nil || len(out) == 0 {
		return err
	}
	for _, m := range out {
		m.SetContext(msg.Context())
	}
	// Other processes first: a push is acknowledged once they hold it.
	if err := h.remote.publish(h.name, out...); err != nil {
		return err
	}
	if h.fanout == 0 {
		return nil
	}
	n := len(out) * h.fanout
	if oc != nil {
		oc.add(n) // before publishing, so the push cannot look done early
	}
	if err := h.pubsub.Publish(h.out, out...); err != nil {
		if oc != nil {
			for range n {
				oc.deliveryDone()
			}
		}
		return status.Errorf(codes.Unavailable, "cannot publish the output of node %q: %v", h.name, err)
	}
	return nil
}

type pipelineMetrics struct {
	messages *prometheus.CounterVec
	retries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	return &pipelineMetrics{
		messages: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_pipeline_messages_total",
			Help: "Messages handled by pipeline nodes, by node and result (ok or the gRPC code of the error).",
		}, []string{"node", "result"})),
		retries: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_pipeline_retries_total",
			Help: "Failed attempts at a message read from another process, retried after a backoff, by node.",
		}, []string{"node"})),
		duration: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_pipeline_handle_duration_seconds",
			Help:    "Time a pipeline node took to handle one message.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"node"})),
	}
}

// Node returns the node of that name running in this process, or nil.
func (p *Pipeline) Node(name string) Node {
	for _, n := range p.nodes {
		if n.name == name {
			return n.node
		}
	}
	return nil
}
