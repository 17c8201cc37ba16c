package dataplane

import (
	"sync"
	"testing"
	"time"
)

func TestWorkersReuseWaitingGoroutinesUpToMaxIdle(t *testing.T) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	w := newWorkers(done, &wg, 3)

	// The pool's own counters, not runtime.NumGoroutine: goroutines that
	// other tests of the package leave or end late must not change the
	// answer.

	// Sequential tasks: each finds the previous task's goroutine waiting
	// (or, rarely, about to wait: then a second one starts).
	for range 100 {
		ran := make(chan struct{})
		w.run(func() { close(ran) })
		<-ran
		waitFor(t, "the worker to wait again", func() bool { return w.idle.Load() >= 1 })
	}
	if n := w.started.Load(); n > 3 {
		t.Fatalf("100 sequential tasks started %d goroutines, want at most 3 (kept for reuse)", n)
	}

	// Ten tasks at once need ten goroutines; when they end, three wait.
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(10)
	for range 10 {
		w.run(func() { started.Done(); <-release })
	}
	started.Wait()
	if n := w.live.Load(); n < 10 {
		t.Fatalf("10 blocked tasks run on %d goroutines, want at least 10", n)
	}
	close(release)
	waitFor(t, "the extra workers to end", func() bool { return w.live.Load() == 3 && w.idle.Load() == 3 })
	if got := w.idle.Load(); got != 3 {
		t.Fatalf("%d idle workers, want 3", got)
	}

	// done ends the waiting ones.
	close(done)
	wg.Wait()
	if got := w.idle.Load(); got != 0 {
		t.Fatalf("%d idle workers after done, want 0", got)
	}
	if n := w.live.Load(); n != 0 {
		t.Fatalf("%d workers alive after done and wg.Wait, want 0", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
