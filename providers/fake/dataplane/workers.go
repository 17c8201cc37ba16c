package dataplane

import (
	"sync"
	"sync/atomic"
)

// workers runs short tasks (a forwarded connection, one direction of a
// splice) on goroutines that are kept for the next task when they finish,
// up to maxIdle waiting at once. A new goroutine starts with a small stack
// that the dial and splice path then has to grow (copying it each time);
// a kept one has grown already, and handing it a task costs no more than
// starting a goroutine.
type workers struct {
	tasks   chan func()
	done    <-chan struct{}
	wg      *sync.WaitGroup
	maxIdle int32
	idle    atomic.Int32
	// started counts the goroutines ever started; live those running now
	// (on a task or waiting for one).
	started atomic.Int64
	live    atomic.Int32
}

// newWorkers returns workers that count their goroutines in wg and end
// their waiting ones when done closes.
func newWorkers(done <-chan struct{}, wg *sync.WaitGroup, maxIdle int) *workers {
	return &workers{tasks: make(chan func()), done: done, wg: wg, maxIdle: int32(maxIdle)}
}

// run runs task on a waiting goroutine, or on a new one when none waits.
func (w *workers) run(task func()) {
	select {
	case w.tasks <- task:
		return
	default:
	}
	w.wg.Add(1)
	w.started.Add(1)
	w.live.Add(1)
	go w.loop(task)
}

func (w *workers) loop(task func()) {
	defer w.wg.Done()
	defer w.live.Add(-1)
	for {
		task()
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		select {
		case task = <-w.tasks:
			w.idle.Add(-1)
		case <-w.done:
			w.idle.Add(-1)
			return
		}
	}
}
