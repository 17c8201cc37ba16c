package controller

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestSyncServesOnlyOurClass(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		svc          *v1.Service
		defaultClass bool
		wantLB       bool
	}{
		{desc: "no class, default implementation on", svc: newService("web"), defaultClass: true, wantLB: true},
		{desc: "no class, default implementation off", svc: newService("web"), defaultClass: false, wantLB: false},
		{desc: "our class", svc: newService("web", fixtures.WithClass(testClass)), defaultClass: false, wantLB: true},
		{desc: "another class", svc: newService("web", fixtures.WithClass("example.com/other")), defaultClass: true, wantLB: false},
		{desc: "ClusterIP service", svc: newService("web", fixtures.WithType(v1.ServiceTypeClusterIP)), defaultClass: true, wantLB: false},
		{desc: "NodePort service", svc: newService("web", fixtures.WithType(v1.ServiceTypeNodePort)), defaultClass: true, wantLB: false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{tc.svc, newNode("n1")}, withConfig(func(c *Config) { c.Class.Default = tc.defaultClass }))
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			_, got := f.provider.LoadBalancerFor("default/web")
			if got != tc.wantLB {
				t.Errorf("load balancer exists = %v, want %v", got, tc.wantLB)
			}
			svc := f.service("web")
			if hasFinalizer(svc) != tc.wantLB {
				t.Errorf("finalizer present = %v, want %v", hasFinalizer(svc), tc.wantLB)
			}
			if !tc.wantLB && len(f.writes()) != 0 {
				t.Errorf("wrote %v for a Service that is not ours", f.writes())
			}
		})
	}
}

func TestEnsureCreatesWithFinalizerFirstThenStatus(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1"), newNode("n2")})
	cp := newConcurrencyProvider(f.provider)
	f.ctrl.provider = cp
	var finalizerAtEnsure bool
	cp.onEnsureFn = func(svc *v1.Service) {
		// What the API server holds at the moment the cloud is called.
		finalizerAtEnsure = hasFinalizer(f.service(svc.Name))
	}
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if !finalizerAtEnsure {
		t.Error("the finalizer was not on the Service when the provider was asked to create the load balancer")
	}
	if got, want := f.writes(), []string{"patch services", "patch services/status"}; !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	svc := f.service("web")
	lb, ok := f.provider.LoadBalancerFor("default/web")
	if !ok {
		t.Fatal("no load balancer was created")
	}
	if len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != lb.Address {
		t.Errorf("status ingress = %+v, want the provider's address %s", svc.Status.LoadBalancer.Ingress, lb.Address)
	}
	if m := svc.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != v1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	if !slices.Equal(lb.Nodes, []string{"n1", "n2"}) {
		t.Errorf("backends = %v, want [n1 n2]", lb.Nodes)
	}
	if ev := f.events(); !hasEvent(ev, "Normal EnsuredLoadBalancer") {
		t.Errorf("events = %v, want an EnsuredLoadBalancer event", ev)
	}
}

func TestSyncWithNothingChangedCallsNothing(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	f.provider.ResetCalls()
	f.client.ClearActions()
	f.events()
	for i := 0; i < 3; i++ {
		if err := f.sync("web"); err != nil {
			t.Fatalf("resync %d: %v", i, err)
		}
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("provider calls on unchanged resyncs = %d (%v), want 0", n, f.provider.Calls())
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("API writes on unchanged resyncs = %v, want none", w)
	}
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events on unchanged resyncs = %v, want none", ev)
	}
}

func TestServiceChangeReensures(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		tweak fixtures.ServiceTweak
	}{
		{desc: "port added", tweak: fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(443, 30443))},
		{desc: "annotation changed", tweak: fixtures.WithAnnotation("example.com/x", "y")},
		{desc: "source ranges set", tweak: fixtures.WithSourceRanges("203.0.113.0/24")},
		{desc: "traffic policy Local", tweak: fixtures.WithLocalPolicy(32000)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
			if err := f.sync("web"); err != nil {
				t.Fatalf("first sync: %v", err)
			}
			svc := f.service("web")
			tc.tweak(svc)
			if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
				t.Fatal(err)
			}
			f.provider.ResetCalls()
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync after change: %v", err)
			}
			if n := f.provider.CountCalls(memory.OpEnsure); n != 1 {
				t.Errorf("EnsureLoadBalancer calls = %d, want 1", n)
			}
			lb, _ := f.provider.LoadBalancerFor("default/web")
			if serviceFingerprint(lb.Service) != serviceFingerprint(f.service("web")) {
				t.Error("the provider did not get the changed Service")
			}
		})
	}
}

func TestLocalTrafficPolicyPassesHealthCheckNodePort(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", fixtures.WithLocalPolicy(32123)), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	lb, _ := f.provider.LoadBalancerFor("default/web")
	if lb.HealthCheckNodePort != 32123 {
		t.Errorf("health check node port = %d, want 32123", lb.HealthCheckNodePort)
	}
}

func TestCleanup(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		after      []fixtures.ServiceTweak
		wantStatus bool // status ingress kept (the Service is being deleted)
	}{
		{desc: "type changed to ClusterIP", after: []fixtures.ServiceTweak{fixtures.WithType(v1.ServiceTypeClusterIP)}},
		{desc: "type changed to NodePort", after: []fixtures.ServiceTweak{fixtures.WithType(v1.ServiceTypeNodePort)}},
		{desc: "service deleted", after: []fixtures.ServiceTweak{fixtures.WithDeletion()}, wantStatus: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
			if err := f.sync("web"); err != nil {
				t.Fatalf("first sync: %v", err)
			}
			svc := f.service("web")
			for _, tw := range tc.after {
				tw(svc)
			}
			if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
				t.Fatal(err)
			}
			f.events()
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if _, ok := f.provider.LoadBalancerFor("default/web"); ok {
				t.Error("load balancer still exists")
			}
			got := f.service("web")
			if hasFinalizer(got) {
				t.Error("finalizer still present")
			}
			if has := len(got.Status.LoadBalancer.Ingress) > 0; has != tc.wantStatus {
				t.Errorf("status ingress present = %v, want %v", has, tc.wantStatus)
			}
			ev := f.events()
			if !hasEvent(ev, "Normal DeletingLoadBalancer") || !hasEvent(ev, "Normal DeletedLoadBalancer") {
				t.Errorf("events = %v, want DeletingLoadBalancer and DeletedLoadBalancer", ev)
			}
		})
	}
}

func TestCleanupKeepsFinalizerWhenDeleteFails(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", withFinalizer(), fixtures.WithDeletion()), newNode("n1")})
	f.provider.FailWith(memory.OpDelete, errors.New("cloud is down"), 1)
	if err := f.sync("web"); err == nil {
		t.Fatal("sync succeeded although the delete failed")
	}
	if !hasFinalizer(f.service("web")) {
		t.Fatal("finalizer removed although the load balancer was not deleted")
	}
	if ev := f.events(); !hasEvent(ev, "Warning DeleteLoadBalancerFailed") {
		t.Errorf("events = %v, want DeleteLoadBalancerFailed", ev)
	}
	if err := f.sync("web"); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if hasFinalizer(f.service("web")) {
		t.Error("finalizer kept after a successful delete")
	}
}

func TestBadInputIsReportedWithTheField(t *testing.T) {
	for _, tc := range []struct {
		desc          string
		svc           *v1.Service
		wantField     string
		wantProvider  bool // the provider is called (its own validation)
		wantFinalizer bool
	}{
		{
			desc:      "invalid source-range annotation",
			svc:       newService("web", fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,not-a-cidr")),
			wantField: "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
		},
		{
			desc:      "invalid spec source range",
			svc:       newService("web", fixtures.WithSourceRanges("300.1.1.1/8")),
			wantField: "spec.loadBalancerSourceRanges[0]",
		},
		{
			desc:      "port conflict",
			svc:       newService("web", fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(80, 30081))),
			wantField: "spec.ports[1].port",
		},
		{
			desc:          "protocol the provider does not support",
			svc:           newService("web", fixtures.WithPorts(fixtures.TCP(80, 30080), fixtures.TCP(81, 30081)), fixtures.WithProtocol(1, v1.ProtocolSCTP)),
			wantField:     "spec.ports[1].protocol",
			wantProvider:  true,
			wantFinalizer: true,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{tc.svc, newNode("n1")})
			err := f.sync("web")
			if err == nil {
				t.Fatal("sync succeeded for a Service that cannot be served")
			}
			ev := f.events()
			found := false
			for _, e := range ev {
				if strings.HasPrefix(e, "Warning SyncLoadBalancerFailed") && strings.Contains(e, tc.wantField) {
					found = true
				}
			}
			if !found {
				t.Errorf("events = %v, want a SyncLoadBalancerFailed naming %s", ev, tc.wantField)
			}
			if called := f.provider.CountCalls(memory.OpEnsure) > 0; called != tc.wantProvider {
				t.Errorf("provider called = %v, want %v", called, tc.wantProvider)
			}
			if _, ok := f.provider.LoadBalancerFor("default/web"); ok {
				t.Error("a load balancer was created for a Service that cannot be served")
			}
			if got := hasFinalizer(f.service("web")); got != tc.wantFinalizer {
				t.Errorf("finalizer = %v, want %v", got, tc.wantFinalizer)
			}
			// Deleting such a Service must not leave it stuck.
			svc := f.service("web")
			fixtures.WithDeletion()(svc)
			if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
				t.Fatal(err)
			}
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync of the deleted Service: %v", err)
			}
			if hasFinalizer(f.service("web")) {
				t.Error("deleted Service kept the finalizer")
			}
		})
	}
}

func TestImplementedElsewhereHandsOver(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web", withFinalizer()), newNode("n1")})
	f.provider.FailWith(memory.OpEnsure, cloudprovider.ImplementedElsewhere, 0)
	if err := f.sync("web"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if hasFinalizer(f.service("web")) {
		t.Error("our finalizer stayed on a Service implemented elsewhere")
	}
	if prev := f.ctrl.applied.get("default/web"); prev == nil || !prev.elsewhere {
		t.Errorf("applied = %+v, want the Service remembered as implemented elsewhere", prev)
	}
	// The finalizer's removal comes back as an update: it must not start
	// it all again (this was a hot loop: finalizer added, provider called,
	// finalizer removed, forever).
	f.client.ClearActions()
	f.provider.ResetCalls()
	for range 3 {
		if err := f.sync("web"); err != nil {
			t.Fatalf("sync after the hand-over: %v", err)
		}
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("provider calls after the hand-over = %d, want 0 until the Service changes", n)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("API writes after the hand-over = %v, want none", w)
	}
	// A change of the Service asks the provider again.
	svc := f.service("web")
	svc.Annotations = map[string]string{"example.com/changed": "yes"}
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
		t.Fatal(err)
	}
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if n := f.provider.CountCalls(memory.OpEnsure); n != 1 {
		t.Errorf("ensure calls after the Service changed = %d, want 1", n)
	}
	// Deleting it calls no delete on the provider: nothing of ours exists.
	f.provider.ResetCalls()
	if err := f.client.CoreV1().Services("default").Delete(f.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if n := f.provider.CountCalls(memory.OpDelete); n != 0 {
		t.Errorf("delete calls for a Service implemented elsewhere = %d, want 0", n)
	}
}

func TestSlowEnsureRecordsEnsuringEvent(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		latency time.Duration
		notice  time.Duration
		want    bool
	}{
		{desc: "fast ensure records no Ensuring event", latency: 0, notice: time.Second, want: false},
		{desc: "slow ensure records one", latency: 200 * time.Millisecond, notice: 20 * time.Millisecond, want: true},
		{desc: "notice 0 records it before every call", latency: 0, notice: 0, want: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")}, withConfig(func(c *Config) { c.SlowEnsureNotice = tc.notice }))
			f.provider.SetLatency(tc.latency, memory.OpEnsure)
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if got := hasEvent(f.events(), "Normal EnsuringLoadBalancer"); got != tc.want {
				t.Errorf("EnsuringLoadBalancer event = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestServicesOfAnotherExtlbControllerAreLeftAlone(t *testing.T) {
	for _, tc := range []struct {
		desc string
		svc  *v1.Service
	}{
		{desc: "LoadBalancer of another class, served by another extlb", svc: newService("web", fixtures.WithClass("extlb.io/other"), withFinalizerOf("extlb.io/other"), withIngress("198.51.100.7"))},
		{desc: "turned ClusterIP, served by another extlb", svc: newService("web", fixtures.WithType(v1.ServiceTypeClusterIP), withFinalizerOf("extlb.io/other"), withIngress("198.51.100.7"))},
		{desc: "being deleted, served by another extlb", svc: newService("web", fixtures.WithClass("extlb.io/other"), withFinalizerOf("extlb.io/other"), fixtures.WithDeletion())},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t, []runtime.Object{tc.svc, newNode("n1")})
			if err := f.sync("web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if n := f.provider.CountCalls(""); n != 0 {
				t.Errorf("provider calls = %d, want 0", n)
			}
			if w := f.writes(); len(w) != 0 {
				t.Errorf("writes = %v, want none: the other controller owns this Service", w)
			}
		})
	}
}

func TestFinalizerRecordsTheServingClass(t *testing.T) {
	f := newFixture(t, []runtime.Object{newService("web"), newNode("n1")})
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	svc := f.service("web")
	if got := svc.Annotations[AnnotationServedByClass]; got != testClass {
		t.Errorf("%s = %q, want %q", AnnotationServedByClass, got, testClass)
	}
	f.provider.ResetCalls()
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if n := f.provider.CountCalls(""); n != 0 {
		t.Errorf("our own annotation counted as a change: %d provider calls", n)
	}
	fixtures.WithType(v1.ServiceTypeClusterIP)(svc)
	if _, err := f.client.CoreV1().Services("default").Update(f.ctx, svc, metaUpdate()); err != nil {
		t.Fatal(err)
	}
	if err := f.sync("web"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.service("web").Annotations[AnnotationServedByClass]; ok || hasFinalizer(f.service("web")) {
		t.Error("cleanup left our annotation or finalizer behind")
	}
}
