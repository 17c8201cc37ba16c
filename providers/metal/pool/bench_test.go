package pool

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAssign measures one Assign+Release of a new Service in a /20
// pool that already holds 0, 1000 and 4000 addresses, and reports each
// against the empty pool (the reference), showing how allocation cost grows
// with the number of Services. Run with -benchtime=1x: each size does a
// fixed number of rounds.
func BenchmarkAssign(b *testing.B) {
	const rounds = 500
	measure := func(held int) time.Duration {
		a := newAllocator(b, newPool("big", withRanges("10.0.0.0/20")))
		for i := range held {
			mustAssign(b, a, newRequest(fmt.Sprintf("held-%d", i)))
		}
		start := time.Now()
		for i := range rounds {
			r := newRequest(fmt.Sprintf("new-%d", i))
			if _, err := a.Assign(r); err != nil {
				b.Fatal(err)
			}
			a.Release(r.Key())
		}
		return time.Since(start) / rounds
	}
	for b.Loop() {
		ref := measure(0)
		b.ReportMetric(float64(ref.Nanoseconds()), "ns/assign-empty")
		for _, held := range []int{1000, 4000} {
			d := measure(held)
			b.ReportMetric(float64(d.Nanoseconds()), fmt.Sprintf("ns/assign-%d-held", held))
			b.ReportMetric(float64(d)/float64(ref), fmt.Sprintf("x-empty-%d-held", held))
			b.Logf("Assign+Release with %d held: %s (%.1fx the empty pool's %s)", held, d, float64(d)/float64(ref), ref)
		}
	}
}

// BenchmarkRestore measures rebuilding the state of 4000 Services from
// their addresses (what a restarted controller does) against assigning
// them afresh (the reference).
func BenchmarkRestore(b *testing.B) {
	const services = 4000
	reqs := make([]Request, services)
	for i := range reqs {
		reqs[i] = newRequest(fmt.Sprintf("s%d", i), withKey(fmt.Sprintf("k%d", i%50)), withPorts(fmt.Sprintf("TCP/%d", 1000+i)))
	}
	for b.Loop() {
		fresh := newAllocator(b, newPool("big", withRanges("10.0.0.0/20")))
		held := make([][]netip.Addr, services)
		start := time.Now()
		for i, r := range reqs {
			ips, err := fresh.Assign(r)
			if err != nil {
				b.Fatal(err)
			}
			held[i] = ips
		}
		assign := time.Since(start)

		restored := newAllocator(b, newPool("big", withRanges("10.0.0.0/20")))
		start = time.Now()
		for i, r := range reqs {
			if _, err := restored.Restore(r, held[i]); err != nil {
				b.Fatal(err)
			}
		}
		restore := time.Since(start)
		b.ReportMetric(float64(restore.Milliseconds()), "ms/restore-4000")
		b.ReportMetric(float64(assign.Milliseconds()), "ms/assign-4000")
		b.ReportMetric(float64(restore)/float64(assign), "x-assign")
		b.Logf("restoring %d Services (50 sharing keys): %s; assigning them afresh: %s (%.2fx)", services, restore, assign, float64(restore)/float64(assign))
	}
}
