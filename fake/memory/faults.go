package memory

import (
	"time"

	"k8s.io/cloud-provider/api"
)

// Fault is what happens to calls of one operation. Each of Latency and Err
// applies to the next Times calls (forever when Times is 0) and then the
// fault is spent.
type Fault struct {
	Latency time.Duration
	Err     error
	Times   int

	used int
}

func (f *Fault) next() (time.Duration, error) {
	if f.Times > 0 && f.used >= f.Times {
		return 0, nil
	}
	f.used++
	return f.Latency, f.Err
}

// SetFault installs f for op, replacing any earlier fault of op.
func (p *Provider) SetFault(op Op, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[op] = &f
}

// SetLatency makes every call of each given op (all four when none is given)
// take d.
func (p *Provider) SetLatency(d time.Duration, ops ...Op) {
	if len(ops) == 0 {
		ops = []Op{OpGet, OpEnsure, OpUpdate, OpDelete}
	}
	for _, op := range ops {
		p.SetFault(op, Fault{Latency: d})
	}
}

// FailWith makes the next times calls of op fail with err (every call when
// times is 0).
func (p *Provider) FailWith(op Op, err error, times int) {
	p.SetFault(op, Fault{Err: err, Times: times})
}

// RetryAfter makes the next times calls of op return an api.RetryError
// asking to be retried after d.
func (p *Provider) RetryAfter(op Op, d time.Duration, times int) {
	p.SetFault(op, Fault{Err: api.NewRetryError("injected: retry later", d), Times: times})
}

// ClearFaults removes every injected fault.
func (p *Provider) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = map[Op]*Fault{}
}
