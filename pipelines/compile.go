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
}

// Pipeline is a compiled graph, ready to start.
type Pipeline struct {
	logger  *slog.Logger
	pubsub  *gochannel.GoChannel
	router  *message.Router
	nodes   []runNode // dependency order: sources first
	started []runNode
	runErr  chan error
}

type runNode struct {
	name string
	role Role
	node Node
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
	for _, n := range nodes {
		for j, from := range n.spec.From {
			src := findNode(nodes, from)
			if local(n.spec.Target) != local(src.spec.Target) {
				errs = append(errs, fmt.Errorf("%s:%d: %s.from[%d]: the edge from %q (target %s) to %q (target %s) crosses processes, which needs the Kafka transport (ingest.kafka), not available in this version; run -target=all",
					spec.File, n.spec.fromLines[j], n.spec.Path(), j, from, src.spec.Target, n.spec.Name, n.spec.Target))
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
	p := &Pipeline{logger: opts.Logger, pubsub: pubsub, router: router, runErr: make(chan error, 1)}

	// fanout[topic] is how many local handlers read a topic: each message
	// published there is that many deliveries to wait for.
	fanout := map[string]int{}
	for _, n := range nodes {
		if local(n.spec.Target) {
			for _, from := range n.spec.From {
				fanout[from]++
			}
		}
	}
	m := newPipelineMetrics(opts.Metrics)
	for _, n := range nodes {
		if !local(n.spec.Target) {
			continue
		}
		set := Settings{
			Name:    n.spec.Name,
			Logger:  opts.Logger.With("node", n.spec.Name),
			Metrics: opts.Metrics,
		}
		if n.factory.Role() == RoleSource {
			set.Output = &output{pubsub: pubsub, topic: n.spec.Name, fanout: fanout[n.spec.Name]}
		}
		node, err := n.factory.Create(set, n.config)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: cannot create node: %w", spec.File, n.spec.line, n.spec.Path(), err)
		}
		h := &handler{name: n.spec.Name, out: n.spec.Name, fanout: fanout[n.spec.Name], pubsub: pubsub, m: m}
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
			router.AddConsumerHandler(n.spec.Name+"<-"+from, from, pubsub, h.handle)
		}
		p.nodes = append(p.nodes, runNode{name: n.spec.Name, role: n.factory.Role(), node: node})
	}
	if len(p.nodes) == 0 {
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
	var errs []error
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
	return errors.Join(errs...)
}

func (p *Pipeline) shutdownStarted(ctx context.Context) {
	for i := len(p.started) - 1; i >= 0; i-- {
		_ = p.started[i].node.Shutdown(ctx)
	}
	p.started = nil
}

// output is the Output of a source node.
type output struct {
	pubsub message.Publisher
	topic  string
	fanout int
}

func (o *output) Push(ctx context.Context, msg *message.Message) (*Outcome, error) {
	oc := newOutcome()
	ctx = context.WithValue(ctx, outcomeKey{}, oc)
	msg.SetContext(ctx)
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
	if err != nil || len(out) == 0 || h.fanout == 0 {
		return err
	}
	for _, m := range out {
		m.SetContext(msg.Context())
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
	duration *prometheus.HistogramVec
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	return &pipelineMetrics{
		messages: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_pipeline_messages_total",
			Help: "Messages handled by pipeline nodes, by node and result (ok or the gRPC code of the error).",
		}, []string{"node", "result"})),
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
