package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	"github.com/extlb/extlb/test/fixtures"
)

// scaleContender is one side of BenchmarkControllerAtScale.
type scaleContender struct {
	name            string
	admissionPolicy bool
	start           startFunc
}

// scaleResult is what one contender measured. CPU figures are the
// benchmark process's CPU over a phase: the controller under test is the
// only thing running in it then (the control plane runs in processes of
// its own).
type scaleResult struct {
	nodes, svcs, heartbeats int
	workers                 int
	setup                   time.Duration // creating the Nodes and Services
	// Start-up with only the Nodes: until the informers synced, idle
	// after that, and heartbeats.
	startNodesCPU, startNodesWall time.Duration
	probeIdle                     time.Duration // CPU over shortIdle
	probeHB                       heartbeatRound
	refs                          []heartbeatRound // no controller running: before, between and after
	// The main run over the Nodes and the Services.
	startAllCPU           time.Duration
	converged             bool
	convergedServices     int
	converge, convergeCPU time.Duration
	convergeGC            time.Duration
	writes                map[string]int64 // at convergence
	drain                 time.Duration    // until its writes stopped (trailing Events)
	writesDrained         map[string]int64
	settled               bool // its CPU use dropped to idle
	settle, settleCPU     time.Duration
	busy                  float64       // CPU share when it did not settle
	idleCPU               time.Duration // over idleWindow
	idleCalls             int64
	hb                    heartbeatRound
	hbCalls               int64
	labelCalls            int64
	fanOutDone            bool
	fanOut, fanOutCPU     time.Duration
	peakRSS, baseRSS      uint64
	peakHeap, baseHeap    uint64
}

// heartbeatRound is the CPU (and its GC part) and wall time of one round
// of heartbeats.
type heartbeatRound struct {
	cpu, gc, wall time.Duration
	done          bool
}

const (
	idleWindow = 10 * time.Second
	shortIdle  = 3 * time.Second
)

// BenchmarkControllerAtScale runs extlb's controller and the upstream
// service controller, one after the other and each on a control plane of
// its own, with equal workers and client QPS (16, 100/200) over 5000 Nodes
// and 10 000 LoadBalancer Services (EXTLB_BENCH_NODES, EXTLB_BENCH_SERVICES)
// and 20 ms per provider call. It prints the time to converge, the
// controller's CPU and memory, the start-up CPU of the Node informer, the
// CPU per 1000 Node heartbeats net of the writes themselves, the time for
// an added Node to reach every load balancer against the ideal, and the
// provider calls caused by a label change nobody selects on.
func BenchmarkControllerAtScale(b *testing.B) {
	nodes := envInt("EXTLB_BENCH_NODES", 5000)
	services := envInt("EXTLB_BENCH_SERVICES", 10000)
	heartbeats := envInt("EXTLB_BENCH_HEARTBEATS", 10000)
	bound := envDuration("EXTLB_BENCH_CONVERGE_TIMEOUT", 20*time.Minute)
	contenders := []scaleContender{
		{name: "extlb (+ admission policy)", admissionPolicy: true, start: startExtlb},
		{name: "upstream", start: startUpstream},
	}
	s := runSettings{workers: 16, qps: 100, burst: 200, resync: 10 * time.Minute}
	if data, err := json.Marshal(benchNode(0)); err == nil {
		report(b, "%d Nodes of %d bytes as JSON, %d Services, %d heartbeats, convergence bound %s", nodes, len(data), services, heartbeats, bound)
	}
	for i := 0; i < b.N; i++ {
		results := make([]scaleResult, len(contenders))
		for j, c := range contenders {
			results[j] = runAtScale(b, c, s, nodes, services, heartbeats, bound)
			logScaleResult(b, c.name, results[j])
		}
		logScaleComparison(b, s, results[0], results[1])
	}
}

func runAtScale(b *testing.B, sc scaleContender, s runSettings, nodes, services, heartbeats int, bound time.Duration) scaleResult {
	b.Helper()
	ctx := b.Context()
	r := scaleResult{heartbeats: heartbeats, nodes: nodes, svcs: services, workers: s.workers}
	portRange := controller.PortRange{Base: 30000, Size: min(65535-30000+1, max(2768, services+1000))}
	s.nodePortRange = portRange
	c := clustertest.StartWithOptions(b, cluster.Options{NodePortRange: portRange.String()})
	defer func() { _ = c.Stop() }() // free the machine for the next contender
	admin := fastClient(b, c.AdminConfig())
	if sc.admissionPolicy {
		installAdmissionPolicy(b, c, admin)
	}
	setup := time.Now()
	names := createNodes(b, ctx, admin, nodes)
	r.refs = append(r.refs, sendHeartbeatRound(b, admin, names, heartbeats, nil))

	// Start-up with only the Nodes: the Node informer's cost.
	w := startCPU()
	probe := startContender(b, sc.start, c.AdminConfig(), newScaleProvider(20*time.Millisecond), s)
	if !pollFor(ctx, 10*time.Millisecond, 5*time.Minute, probe.synced) {
		b.Fatalf("%s: caches not synced with %d Nodes within 5 minutes", sc.name, nodes)
	}
	r.startNodesCPU, r.startNodesWall = w.elapsed()
	w = startCPU()
	time.Sleep(shortIdle)
	r.probeIdle, _ = w.elapsed()
	r.probeHB = sendHeartbeatRound(b, admin, names, heartbeats, probe.nodes)
	probe.stop()
	r.refs = append(r.refs, sendHeartbeatRound(b, admin, names, heartbeats, nil))

	createServices(b, ctx, admin, services)
	r.setup = time.Since(setup)
	report(b, "%s: created %d Nodes and %d Services in %.1fs", sc.name, nodes, services, r.setup.Seconds())

	mem := sampleMemory()
	counter := &writeCounter{}
	cfg := c.AdminConfig()
	cfg.Wrap(counter.wrap)
	lb := newScaleProvider(20 * time.Millisecond)
	w = startCPU()
	run := startContender(b, sc.start, cfg, lb, s)
	defer run.stop()
	if !pollFor(ctx, 10*time.Millisecond, 5*time.Minute, run.synced) {
		b.Fatalf("%s: caches not synced within 5 minutes", sc.name)
	}
	r.startAllCPU, _ = w.elapsed()
	r.converged = pollFor(ctx, 50*time.Millisecond, bound, func() bool { return counter.statusServices.Load() >= int64(services) })
	r.convergeCPU, r.converge = w.elapsed()
	r.convergeGC = w.gcElapsed()
	r.writes = counter.snapshot()
	// Check that every Service shows its address.
	r.converged = r.converged && pollFor(ctx, time.Second, 2*time.Minute, func() bool {
		n, err := countIngress(ctx, admin, "default")
		r.convergedServices = n
		return err == nil && n == services
	})
	if !r.converged {
		r.convergedServices, _ = countIngress(ctx, admin, "default")
		report(b, "%s: NOT converged within %s: %d of %d Services have an address", sc.name, bound, r.convergedServices, services)
	} else {
		r.measureSteadyState(b, run, lb, counter, admin, names)
	}
	mem.end()
	r.peakRSS, r.peakHeap, r.baseRSS, r.baseHeap = mem.rss, mem.liveHeap, mem.baseRSS, mem.baseH
	run.stop()
	// The second reference, once the stopped contender's goroutines are gone.
	if _, _, busy, ok := settle(ctx, 2*time.Minute); !ok {
		report(b, "%s: still using %.0f%% of a core 2 minutes after it was stopped", sc.name, 100*busy)
	}
	r.refs = append(r.refs, sendHeartbeatRound(b, admin, names, heartbeats, nil))
	return r
}

// measureSteadyState measures a converged contender: idle, heartbeats, a
// label change and an added Node.
func (r *scaleResult) measureSteadyState(b *testing.B, run *running, lb *scaleProvider, counter *writeCounter, admin kubernetes.Interface, names []string) {
	ctx := b.Context()
	r.drain, _ = waitQuiet(ctx, counter, 3*time.Second, 10*time.Minute)
	r.writesDrained = counter.snapshot()
	r.settle, r.settleCPU, r.busy, r.settled = settle(ctx, envDuration("EXTLB_BENCH_SETTLE_TIMEOUT", 2*time.Minute))
	if r.settled {
		lb.resetCalls()
		w := startCPU()
		time.Sleep(idleWindow)
		r.idleCPU, _ = w.elapsed()
		_, r.idleCalls, _ = lb.callCounts()
		lb.resetCalls()
		r.hb = sendHeartbeatRound(b, admin, names, r.heartbeats, run.nodes)
		_, r.hbCalls, _ = lb.callCounts()
	}

	// A label change on one Node; the provider selects on no label.
	lb.resetCalls()
	patch := fmt.Sprintf(`{"metadata":{"labels":{"bench.extlb.io/touched":"%d"}}}`, time.Now().UnixNano())
	out, err := admin.CoreV1().Nodes().Patch(ctx, names[0], types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		b.Fatalf("labelling %s: %v", names[0], err)
	}
	rv, _ := strconv.ParseUint(out.ResourceVersion, 10, 64)
	pollFor(ctx, 20*time.Millisecond, time.Minute, func() bool { return nodesSeen(run.nodes, map[string]uint64{names[0]: rv}) })
	time.Sleep(5 * time.Second)
	_, r.labelCalls, _ = lb.callCounts()

	// One added Node must reach every load balancer; 10x the ideal is
	// long enough to tell that it did not.
	ideal := time.Duration(r.svcs) * 20 * time.Millisecond / time.Duration(r.workers)
	w := startCPU()
	if _, err := admin.CoreV1().Nodes().Create(ctx, benchNode(r.nodes), metav1.CreateOptions{}); err != nil {
		b.Fatalf("adding a node: %v", err)
	}
	r.fanOutDone = pollFor(ctx, 10*time.Millisecond, 10*ideal+30*time.Second, func() bool { return lb.countWithNodes(r.nodes+1) == r.svcs })
	r.fanOutCPU, r.fanOut = w.elapsed()
}

// sendHeartbeatRound sends a round of heartbeats and, with the Node cache
// of a running contender, waits until it has them all.
func sendHeartbeatRound(b *testing.B, admin kubernetes.Interface, names []string, n int, nodes cache.Store) heartbeatRound {
	b.Helper()
	w := startCPU()
	lastRV, err := sendHeartbeats(b.Context(), admin, names, n)
	if err != nil {
		b.Fatalf("heartbeats: %v", err)
	}
	done := nodes == nil || pollFor(b.Context(), 20*time.Millisecond, 2*time.Minute, func() bool { return nodesSeen(nodes, lastRV) })
	time.Sleep(500 * time.Millisecond)
	cpu, wall := w.elapsed()
	return heartbeatRound{cpu: cpu, gc: w.gcElapsed(), wall: wall, done: done}
}

// hbCost is the controller's CPU per 1000 heartbeats, in ms: net of the
// heartbeats' own cost and of the controller's idle CPU, the GC part of
// it, and the spread of the references (the measurement's noise).
type hbCost struct{ net, gc, noise float64 }

func (c hbCost) String() string {
	return fmt.Sprintf("%.1f ms CPU per 1000 (GC %.1f ms of it; references spread %.1f ms)", c.net, c.gc, c.noise)
}

// perThousand is hbCost of round h: its CPU minus the mean of the rounds
// without a controller and minus the controller's idle CPU (idle over
// idleFor) for the same time.
func (r scaleResult) perThousand(h heartbeatRound, idle, idleFor time.Duration) hbCost {
	var sum, sumGC, lo, hi time.Duration
	for i, ref := range r.refs {
		sum, sumGC = sum+ref.cpu, sumGC+ref.gc
		if i == 0 || ref.cpu < lo {
			lo = ref.cpu
		}
		hi = max(hi, ref.cpu)
	}
	n := time.Duration(max(1, len(r.refs)))
	idleShare := time.Duration(float64(idle) * h.wall.Seconds() / idleFor.Seconds())
	scale := 1000 / float64(r.heartbeats) * 1000 // seconds to ms per 1000
	return hbCost{net: (h.cpu - sum/n - idleShare).Seconds() * scale, gc: (h.gc - sumGC/n).Seconds() * scale, noise: (hi - lo).Seconds() * scale}
}

func logScaleResult(b *testing.B, name string, r scaleResult) {
	report(b, "%s: start-up with %d Nodes: CPU %.3fs to synced (%.2fs wall); %d heartbeats: %s, all seen %v; with the Services too: start-up CPU %.3fs",
		name, r.nodes, r.startNodesCPU.Seconds(), r.startNodesWall.Seconds(), r.heartbeats, r.perThousand(r.probeHB, r.probeIdle, shortIdle), r.probeHB.done, r.startAllCPU.Seconds())
	report(b, "%s: converge %d of %d Services: %.1fs, CPU %.1fs (GC %.1fs; %.2f ms/Service), writes/Service %.2f (%s) at convergence",
		name, r.convergedServices, r.svcs, r.converge.Seconds(), r.convergeCPU.Seconds(), r.convergeGC.Seconds(), 1000*r.convergeCPU.Seconds()/float64(r.svcs),
		perService(r.writes, r.svcs), formatWrites(r.writes, r.svcs))
	report(b, "%s: peak RSS %.0f MiB (%.0f MiB before it started), peak live Go heap %.0f MiB (%.0f MiB before)",
		name, mib(r.peakRSS), mib(r.baseRSS), mib(r.peakHeap), mib(r.baseHeap))
	if !r.converged {
		return
	}
	report(b, "%s: writes stopped %.1fs after convergence: writes/Service %.2f (%s); CPU settled %v after %.1fs more (%.1fs CPU; %.0f%% of a core when it gave up)",
		name, r.drain.Seconds(), perService(r.writesDrained, r.svcs), formatWrites(r.writesDrained, r.svcs), r.settled, r.settle.Seconds(), r.settleCPU.Seconds(), 100*r.busy)
	if r.settled {
		report(b, "%s: idle CPU %.1f ms/s (%d provider calls in %s); %d heartbeats: %s, all seen %v, %d provider calls",
			name, 1000*r.idleCPU.Seconds()/idleWindow.Seconds(), r.idleCalls, idleWindow, r.heartbeats, r.perThousand(r.hb, r.idleCPU, idleWindow), r.hb.done, r.hbCalls)
	}
	var refs []string
	for _, ref := range r.refs {
		refs = append(refs, fmt.Sprintf("%.3fs (GC %.3fs) in %.1fs", ref.cpu.Seconds(), ref.gc.Seconds(), ref.wall.Seconds()))
	}
	report(b, "%s: %d heartbeats with no controller: CPU %s; with it: %.3fs (GC %.3fs) in %.1fs with only the Nodes, %.3fs (GC %.3fs) in %.1fs after convergence",
		name, r.heartbeats, strings.Join(refs, ", "), r.probeHB.cpu.Seconds(), r.probeHB.gc.Seconds(), r.probeHB.wall.Seconds(), r.hb.cpu.Seconds(), r.hb.gc.Seconds(), r.hb.wall.Seconds())
	report(b, "%s: label change on one Node: %d provider calls; node fan-out to %d load balancers: %.2fs (done %v), CPU %.2fs",
		name, r.labelCalls, r.svcs, r.fanOut.Seconds(), r.fanOutDone, r.fanOutCPU.Seconds())
}

func logScaleComparison(b *testing.B, s runSettings, a, up scaleResult) {
	ideal := time.Duration(a.svcs) * 20 * time.Millisecond / time.Duration(s.workers)
	report(b, "%d Nodes, %d Services, %d workers, QPS %.0f/%d for both", a.nodes, a.svcs, s.workers, s.qps, s.burst)
	more := ""
	if !up.converged {
		more = fmt.Sprintf(" (upstream NOT converged: %d of %d)", up.convergedServices, up.svcs)
	}
	report(b, "converge: extlb %.1fs, upstream %.1fs: %.2fx faster; CPU to converge %.1fs vs %.1fs: %.1fx less%s",
		a.converge.Seconds(), up.converge.Seconds(), ratio(up.converge.Seconds(), a.converge.Seconds()),
		a.convergeCPU.Seconds(), up.convergeCPU.Seconds(), ratio(up.convergeCPU.Seconds(), a.convergeCPU.Seconds()), more)
	aProbe, upProbe := a.perThousand(a.probeHB, a.probeIdle, shortIdle), up.perThousand(up.probeHB, up.probeIdle, shortIdle)
	report(b, "with %d Nodes and no Service: start-up CPU extlb %.3fs, upstream %.3fs (%.2fx); CPU per 1000 heartbeats extlb %.1f ms, upstream %.1f ms (%.2fx)",
		a.nodes, a.startNodesCPU.Seconds(), up.startNodesCPU.Seconds(), ratio(up.startNodesCPU.Seconds(), a.startNodesCPU.Seconds()), aProbe.net, upProbe.net, ratio(upProbe.net, aProbe.net))
	report(b, "peak live Go heap above the baseline: extlb %.0f MiB, upstream %.0f MiB; peak RSS extlb %.0f MiB, upstream %.0f MiB",
		mib(a.peakHeap-min(a.peakHeap, a.baseHeap)), mib(up.peakHeap-min(up.peakHeap, up.baseHeap)), mib(a.peakRSS), mib(up.peakRSS))
	aNet := a.perThousand(a.hb, a.idleCPU, idleWindow).net
	upHB := "not measured (its CPU did not settle)"
	if up.settled {
		upNet := up.perThousand(up.hb, up.idleCPU, idleWindow).net
		upHB = fmt.Sprintf("%.1f ms (%.2fx)", upNet, ratio(upNet, aNet))
	}
	report(b, "after convergence, CPU per 1000 heartbeats: extlb %.1f ms, upstream %s", aNet, upHB)
	report(b, "label change nobody selects on: extlb %d provider calls (target 0), upstream %d", a.labelCalls, up.labelCalls)
	report(b, "node fan-out: extlb %.2fs = %.2fx the ideal %d x 20ms / %d = %.2fs (target <= 1.2x); upstream %.2fs = %.2fx (done %v)",
		a.fanOut.Seconds(), ratio(a.fanOut.Seconds(), ideal.Seconds()), a.svcs, s.workers, ideal.Seconds(), up.fanOut.Seconds(), ratio(up.fanOut.Seconds(), ideal.Seconds()), up.fanOutDone)
	b.ReportMetric(a.converge.Seconds(), "extlb-converge-s")
	b.ReportMetric(ratio(up.converge.Seconds(), a.converge.Seconds()), "x-converge-vs-upstream")
	b.ReportMetric(a.convergeCPU.Seconds(), "extlb-converge-cpu-s")
	b.ReportMetric(aNet, "extlb-cpu-ms/1000hb")
	b.ReportMetric(ratio(a.fanOut.Seconds(), ideal.Seconds()), "fanout-x-ideal")
	b.ReportMetric(float64(a.labelCalls), "extlb-label-calls")
}

// benchNode is Node i as a kubelet would register it, trimmed: labels,
// provider ID, addresses, capacity, conditions, system info and a few
// images (about 2.5 KB as JSON), Ready.
func benchNode(i int) *v1.Node {
	name := fmt.Sprintf("node-%05d", i)
	ip := fmt.Sprintf("10.%d.%d.%d", 1+i>>16, (i>>8)&255, i&255)
	n := fixtures.Node(name,
		fixtures.WithNodeLabel("kubernetes.io/hostname", name), fixtures.WithNodeLabel("kubernetes.io/os", "linux"),
		fixtures.WithNodeLabel("kubernetes.io/arch", "amd64"), fixtures.WithNodeLabel("node.kubernetes.io/instance-type", "m6i.2xlarge"),
		fixtures.WithNodeLabel("topology.kubernetes.io/zone", fmt.Sprintf("zone-%d", i%3)),
		fixtures.WithProviderID("fake:///bench/"+name), fixtures.WithInternalIP(ip), fixtures.WithNodeAddress(v1.NodeHostName, name))
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for _, t := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		n.Status.Conditions = append(n.Status.Conditions, v1.NodeCondition{Type: t, Status: v1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "Kubelet" + string(t) + "Ok"})
	}
	n.Status.Conditions = append(n.Status.Conditions, v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady", Message: "kubelet is posting ready status"})
	res := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("32Gi"), v1.ResourcePods: resource.MustParse("110"), v1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
	n.Status.Capacity, n.Status.Allocatable = res, res.DeepCopy()
	n.Status.NodeInfo = v1.NodeSystemInfo{MachineID: fmt.Sprintf("%032x", i), SystemUUID: fmt.Sprintf("%032x", i+1), BootID: fmt.Sprintf("%032x", i+2),
		KernelVersion: "6.8.0-1019-aws", OSImage: "Ubuntu 24.04.1 LTS", ContainerRuntimeVersion: "containerd://1.7.24", KubeletVersion: "v1.37.2",
		OperatingSystem: "linux", Architecture: "amd64"}
	for j, img := range []string{"registry.k8s.io/kube-proxy:v1.37.2", "registry.k8s.io/pause:3.10", "docker.io/calico/node:v3.29.1", "docker.io/calico/cni:v3.29.1",
		"registry.k8s.io/coredns/coredns:v1.12.0", "quay.io/prometheus/node-exporter:v1.8.2"} {
		n.Status.Images = append(n.Status.Images, v1.ContainerImage{Names: []string{img}, SizeBytes: int64(10_000_000 * (j + 1))})
	}
	return n
}

// createNodes creates Nodes 0 … n-1 from 16 goroutines and returns their
// names.
func createNodes(b *testing.B, ctx context.Context, c kubernetes.Interface, n int) []string {
	b.Helper()
	names := make([]string, n)
	err := forEachConcurrently(ctx, n, 16, func(i int) error {
		node := benchNode(i)
		names[i] = node.Name
		_, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("creating nodes: %v", err)
	}
	return names
}

// heartbeatSeq makes every heartbeat's time unique (the API server drops
// a patch that changes nothing, and lastHeartbeatTime has second
// resolution).
var heartbeatSeq atomic.Int64

// sendHeartbeats writes total status-only updates (the Ready condition's
// lastHeartbeatTime), round robin over names, from 32 goroutines, and
// returns the resourceVersion of each Node's last write.
func sendHeartbeats(ctx context.Context, c kubernetes.Interface, names []string, total int) (map[string]uint64, error) {
	epoch := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	last := map[string]uint64{}
	lastIndex := map[string]int{}
	err := forEachConcurrently(ctx, total, 32, func(i int) error {
		name := names[i%len(names)]
		ts := epoch.Add(time.Duration(heartbeatSeq.Add(1)) * time.Second).Format(time.RFC3339)
		patch := `{"status":{"conditions":[{"type":"Ready","status":"True","lastHeartbeatTime":"` + ts + `"}]}}`
		// Raw: decoding the answer would only add to the reference.
		raw, err := c.CoreV1().RESTClient().Patch(types.StrategicMergePatchType).Resource("nodes").Name(name).SubResource("status").
			Body([]byte(patch)).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("heartbeat of %s: %w", name, err)
		}
		rv := resourceVersionOf(raw)
		mu.Lock()
		defer mu.Unlock()
		if j, ok := lastIndex[name]; !ok || i > j {
			last[name], lastIndex[name] = rv, i
		}
		return nil
	})
	return last, err
}

// resourceVersionOf finds metadata.resourceVersion in an object's JSON.
func resourceVersionOf(raw []byte) uint64 {
	const key = `"resourceVersion":"`
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return 0
	}
	rest := raw[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0
	}
	rv, _ := strconv.ParseUint(string(rest[:j]), 10, 64)
	return rv
}
