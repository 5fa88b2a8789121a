package pipelines

import "context"

// NewOutcomeForTest returns a finished Outcome with the given rejections and
// error, for tests of sources that need an Output answering a given way.
func NewOutcomeForTest(rejected int64, msg string, err error) *Outcome {
	o := newOutcome()
	o.rejected = rejected
	if msg != "" {
		o.messages = []string{msg}
	}
	o.err = err
	return o
}

// ContextWithOutcome returns ctx carrying a new Outcome, for tests of stages
// and sinks that report rejections and errors through it.
func ContextWithOutcome(ctx context.Context) (context.Context, *Outcome) {
	o := newOutcome()
	return context.WithValue(ctx, outcomeKey{}, o), o
}

// SettleForTest settles o as the last delivery of a push would: with err
// nil the push is acknowledged, otherwise refused with err. It runs the
// OnSettled functions, for tests of sinks that use them.
func (o *Outcome) SettleForTest(err error) {
	o.add(1)
	if err != nil {
		o.fail(err)
	}
	o.deliveryDone()
}
