package speaker_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/extlb/extlb/test/netns"
)

// failoverTrials is how many times each benchmark kills the announcing
// speaker.
const failoverTrials = 10

// BenchmarkFailoverCrash measures, over repeated trials, the time from the
// moment the announcing speaker dies without a word (its sockets close, as
// when the process is killed) to the first ARP frame from the new node that
// the client sees (its gratuitous ARP or an answer to the client's
// requests, which go out every 20 ms). Target: 1.5 s.
func BenchmarkFailoverCrash(b *testing.B) {
	benchmarkFailover(b, 1500*time.Millisecond, (*node).crash)
}

// BenchmarkFailoverGraceful is BenchmarkFailoverCrash for a speaker that
// stops as on SIGTERM: it leaves first. Target: 0.3 s.
func BenchmarkFailoverGraceful(b *testing.B) {
	benchmarkFailover(b, 300*time.Millisecond, (*node).stop)
}

func benchmarkFailover(b *testing.B, target time.Duration, kill func(*node)) {
	netns.RequireRoot(b)
	c := newCluster(b, newService("web"))
	c.startAll()
	owner := expectedOwner(vip, nodeNames...)
	rest := slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == owner })
	next := expectedOwner(vip, rest...)
	c.waitOwner(vip, owner, 5*time.Second)

	// Reference, same process and lab: a plain ARP exchange with the live
	// announcer.
	var ref []time.Duration
	for range failoverTrials {
		ref = append(ref, c.firstAnswer(func() {}, owner))
	}

	var times []time.Duration
	for range b.N {
		for range failoverTrials {
			d := c.firstAnswer(func() { kill(c.nodes[owner]) }, next)
			times = append(times, d)
			c.start(owner)
			c.waitOwner(vip, owner, 10*time.Second)
		}
	}
	med, worst := medianMax(times)
	refMed, _ := medianMax(ref)
	b.ReportMetric(float64(med)/1e6, "median-ms")
	b.ReportMetric(float64(worst)/1e6, "max-ms")
	b.ReportMetric(float64(med)/float64(target), "median/target")
	b.ReportMetric(float64(worst)/float64(target), "max/target")
	b.ReportMetric(float64(refMed)/1e6, "ref-arp-median-ms")
	b.Logf("failover over %d trials: median %v, max %v (target %v: median at %.0f%%, max at %.0f%%); reference ARP answer from the live node: median %v",
		len(times), med.Round(time.Millisecond), worst.Round(time.Millisecond), target,
		100*float64(med)/float64(target), 100*float64(worst)/float64(target), refMed.Round(time.Microsecond))
	if worst > 5*time.Second {
		b.Errorf("a failover took %v", worst)
	}
}

// firstAnswer starts event (in the background) and returns the time from
// its start to the first ARP frame claiming vip with node want's MAC that
// the client sees, while the client asks every 20 ms. Bounded: at most 5 s,
// 250 requests.
func (c *testbed) firstAnswer(event func(), want string) time.Duration {
	t := c.t
	t.Helper()
	ac, err := c.client.ARPClient(c.clientLAN.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	mac := c.nodes[want].lan.MAC.String()
	done := make(chan struct{})
	stopAsking := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		event()
	}()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 250 {
			if err := ac.Request(vip); err != nil {
				return
			}
			select {
			case <-stopAsking:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stopAsking); <-done }()
	deadline := start.Add(5 * time.Second)
	for {
		a, err := ac.NextClaim(vip, deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no ARP frame from %s for %s within 5s", want, vip)
		}
		if err != nil {
			t.Fatal(err)
		}
		if a.MAC.String() == mac {
			return a.At.Sub(start)
		}
	}
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}
