package gce

import (
	"testing"
	"time"
)

// phaseCalls counts the API calls of one phase.
type phaseCalls struct{ reads, writes int }

func (c phaseCalls) total() int { return c.reads + c.writes }

func (e *testEnv) count(f func()) phaseCalls {
	e.srv.ResetCalls()
	f()
	var c phaseCalls
	for _, call := range e.srv.Calls() {
		if call.Write {
			c.writes++
		} else {
			c.reads++
		}
	}
	return c
}

// BenchmarkAPICalls counts the compute API calls (reads include operation
// waits) of a Service's life on a cluster of 300 nodes: create, an idle
// resync, one node joining, and delete. The reference is a reconciler that
// rebuilds the load balancer (delete, then create) on every resync and node
// change, measured in the same process against the same fake.
func BenchmarkAPICalls(b *testing.B) {
	const nodes = 300
	for range b.N {
		b.StopTimer()
		e := newTestEnv(b, func(o *Options) { o.NodeTags = []string{"k8s-node"} })
		all := e.nodes(nodes + 1)
		svc := newService("web", withPorts("80/TCP", "443/TCP"))
		b.StartTimer()
		start := time.Now()

		create := e.count(func() { e.ensure(svc, all[:nodes]) })
		idle := e.count(func() { e.ensure(svc, all[:nodes]) })
		join := e.count(func() {
			if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, svc, all); err != nil {
				b.Fatal(err)
			}
		})
		remove := e.count(func() { e.remove(svc) })
		elapsed := time.Since(start)

		e.ensure(svc, all[:nodes])
		rebuild := e.count(func() {
			e.remove(svc)
			e.ensure(svc, all)
		})
		e.remove(svc)

		b.ReportMetric(float64(create.total()), "create-calls")
		b.ReportMetric(float64(idle.total()), "idle-calls")
		b.ReportMetric(float64(idle.writes), "idle-writes")
		b.ReportMetric(float64(join.total()), "node-join-calls")
		b.ReportMetric(float64(remove.total()), "delete-calls")
		b.ReportMetric(float64(rebuild.total())/float64(idle.total()), "rebuild/idle-ratio")
		b.ReportMetric(float64(rebuild.total())/float64(join.total()), "rebuild/node-join-ratio")
		b.Logf("%d nodes, batch %d: create %d reads + %d writes; idle %d + %d; node join %d + %d; delete %d + %d; rebuild reference %d + %d per resync (%.1fx idle, %.1fx node join); all four phases took %v",
			nodes, e.p.batchSize, create.reads, create.writes, idle.reads, idle.writes, join.reads, join.writes, remove.reads, remove.writes,
			rebuild.reads, rebuild.writes, float64(rebuild.total())/float64(idle.total()), float64(rebuild.total())/float64(join.total()), elapsed)
	}
}
