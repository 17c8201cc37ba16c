package metal

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// statusWriter keeps IPPool status up to date: after a kick it writes the
// pools whose status changed, then waits at least interval before the next
// round, so a burst of allocations costs one write per pool. A pool whose
// cached status already equals the desired one is not written.
type statusWriter struct {
	store    poolStore
	desired  func() map[string]IPPoolStatus
	interval time.Duration
	// resync is how often the writer runs without a kick, to repair a
	// write that failed or a status someone else changed.
	resync time.Duration
	kicks  chan struct{}
	// written remembers what was last written per pool, so that a kick
	// before the cache sees our own write does not write the same again.
	written map[string]IPPoolStatus
}

func newStatusWriter(store poolStore, desired func() map[string]IPPoolStatus, interval time.Duration) *statusWriter {
	return &statusWriter{
		store:    store,
		desired:  desired,
		interval: interval,
		resync:   time.Minute,
		kicks:    make(chan struct{}, 1),
		written:  map[string]IPPoolStatus{},
	}
}

// kick asks for a write round soon; it never blocks.
func (w *statusWriter) kick() {
	select {
	case w.kicks <- struct{}{}:
	default:
	}
}

func (w *statusWriter) run(ctx context.Context) {
	resync := time.NewTicker(w.resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kicks:
		case <-resync.C:
			clear(w.written)
		}
		w.writeChanged(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.interval):
		}
	}
}

func (w *statusWriter) writeChanged(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if !w.store.HasSynced() {
		return
	}
	pools, err := w.store.List()
	if err != nil {
		logger.Error(err, "Listing IPPools for status")
		return
	}
	desired := w.desired()
	for _, p := range pools {
		want, ok := desired[p.Name]
		if !ok {
			// Not yet seen by the allocator; the reload that follows the
			// informer event kicks us again.
			continue
		}
		if p.Status == want {
			w.written[p.Name] = want
			continue
		}
		if last, ok := w.written[p.Name]; ok && last == want {
			continue
		}
		if err := w.store.UpdateStatus(ctx, p.Name, want); err != nil {
			logger.Error(err, "Writing IPPool status", "ipPool", p.Name)
			continue
		}
		w.written[p.Name] = want
	}
}
