package metal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/cloud-provider/api"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestCapabilities(t *testing.T) {
	var p *Provider
	caps := providers.CapabilitiesOf(p)
	if caps.TargetsNodePorts || caps.IPMode != v1.LoadBalancerIPModeVIP {
		t.Fatalf("Capabilities = %+v, want no node ports and VIP", caps)
	}
}

func TestEnsureIsIdempotentAndDeleteFrees(t *testing.T) {
	env := newTestEnv(t, []*IPPool{newIPPool("lab", []string{"192.0.2.10-192.0.2.11"})})
	ctx := context.Background()
	web := newService("web")
	if got := env.mustEnsure(t, web); got != "192.0.2.10" {
		t.Fatalf("web got %q", got)
	}
	if got := env.mustEnsure(t, web); got != "192.0.2.10" {
		t.Fatalf("repeat Ensure got %q", got)
	}
	st, exists, err := env.provider.GetLoadBalancer(ctx, "test", web)
	if err != nil || !exists || ingressString(st) != "192.0.2.10" {
		t.Fatalf("GetLoadBalancer = %v, %v, %v", st, exists, err)
	}
	if st.Ingress[0].IPMode == nil || *st.Ingress[0].IPMode != v1.LoadBalancerIPModeVIP {
		t.Fatalf("ingress ipMode = %v, want VIP", st.Ingress[0].IPMode)
	}
	if got := env.mustEnsure(t, newService("api")); got != "192.0.2.11" {
		t.Fatalf("api got %q", got)
	}
	if err := env.provider.EnsureLoadBalancerDeleted(ctx, "test", web); err != nil {
		t.Fatal(err)
	}
	if err := env.provider.EnsureLoadBalancerDeleted(ctx, "test", web); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, exists, _ := env.provider.GetLoadBalancer(ctx, "test", web); exists {
		t.Fatal("GetLoadBalancer still finds web after delete")
	}
	if got := env.mustEnsure(t, newService("db")); got != "192.0.2.10" {
		t.Fatalf("db got %q, want the address web freed", got)
	}
	if name := env.provider.GetLoadBalancerName(ctx, "test", web); name != env.provider.GetLoadBalancerName(ctx, "test", web.DeepCopy()) || name == "" {
		t.Fatalf("GetLoadBalancerName not deterministic: %q", name)
	}
}

func TestChangingRequestMovesService(t *testing.T) {
	env := newTestEnv(t, []*IPPool{
		newIPPool("a", []string{"192.0.2.0/30"}),
		newIPPool("b", []string{"198.51.100.0/30"}),
	})
	if got := env.mustEnsure(t, newService("web")); got != "192.0.2.0" {
		t.Fatalf("got %q", got)
	}
	if got := env.mustEnsure(t, newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.3"))); got != "192.0.2.3" {
		t.Fatalf("after requesting .3 got %q", got)
	}
	if got := env.mustEnsure(t, newService("web", fixtures.WithAnnotation(AnnotationIPPool, "b"))); got != "198.51.100.0" {
		t.Fatalf("after naming pool b got %q", got)
	}
	if got := env.mustEnsure(t, newService("other", fixtures.WithLoadBalancerIP("192.0.2.3"))); got != "192.0.2.3" {
		t.Fatalf("the address web left was not freed: %q", got)
	}
}

func TestEnsureErrors(t *testing.T) {
	pools := []*IPPool{
		newIPPool("lab", []string{"192.0.2.1-192.0.2.2"}),
		newIPPool("team-a", []string{"198.51.100.0/30"}, withNamespaceSelector(map[string]string{"team": "a"})),
	}
	existing := []*v1.Service{
		newService("holder", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), withPorts(80, 443)),
	}
	tests := []struct {
		desc      string
		svc       *v1.Service
		wantField string // "" means: not an InputError
		wantRetry bool
		wantMsg   string
	}{
		{
			desc: "annotation is not an address", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1,banana")),
			wantField: fieldLoadBalancerIPs, wantMsg: `"banana" is not an IP address`,
		},
		{
			desc: "two addresses of one family", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1, 192.0.2.2")),
			wantField: fieldLoadBalancerIPs, wantMsg: "at most one address per IP family",
		},
		{
			desc: "annotation and spec.loadBalancerIP disagree", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.2"), fixtures.WithLoadBalancerIP("192.0.2.1")),
			wantField: fieldLoadBalancerIPs, wantMsg: "conflicts with spec.loadBalancerIP",
		},
		{
			desc: "spec.loadBalancerIP is garbage", svc: newService("web", fixtures.WithLoadBalancerIP("x")),
			wantField: fieldLoadBalancerIP, wantMsg: `"x" is not an IP address`,
		},
		{
			desc: "empty pool annotation", svc: newService("web", fixtures.WithAnnotation(AnnotationIPPool, " ")),
			wantField: fieldIPPool, wantMsg: "must name an IPPool",
		},
		{
			desc: "empty sharing key", svc: newService("web", fixtures.WithAnnotation(AnnotationAllowSharedIP, "")),
			wantField: fieldAllowSharedIP, wantMsg: "non-empty sharing key",
		},
		{
			desc: "requested address outside every pool", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "203.0.113.9")),
			wantField: fieldLoadBalancerIPs, wantRetry: true, wantMsg: "requested address 203.0.113.9 is outside every IPPool",
		},
		{
			desc: "spec.loadBalancerIP outside every pool", svc: newService("web", fixtures.WithLoadBalancerIP("203.0.113.9")),
			wantField: fieldLoadBalancerIP, wantRetry: true, wantMsg: "outside every IPPool",
		},
		{
			desc: "requested address of the wrong family", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "2001:db8::1")),
			wantField: fieldLoadBalancerIPs, wantMsg: "is IPv6, but the Service only gets IPv4",
		},
		{
			desc: "unknown pool", svc: newService("web", fixtures.WithAnnotation(AnnotationIPPool, "nope")),
			wantField: fieldIPPool, wantRetry: true, wantMsg: `there is no IPPool "nope"`,
		},
		{
			desc: "pool whose namespace selector does not match", svc: newService("web", fixtures.WithAnnotation(AnnotationIPPool, "team-a")),
			wantField: fieldIPPool, wantRetry: true, wantMsg: `its namespaceSelector "team=a" does not match the labels of namespace "default"`,
		},
		{
			desc: "address taken by a Service with another key", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "other"), withPorts(8080)),
			wantField: fieldAllowSharedIP, wantRetry: true, wantMsg: `in use by Service default/holder with sharing key "k", not "other"`,
		},
		{
			desc: "address taken by a sharer on the same port", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), withPorts(8080, 443)),
			wantField: "spec.ports[1]", wantRetry: true, wantMsg: "port TCP/443 is already served on address 192.0.2.1 by Service default/holder",
		},
		{
			desc: "sharer with another traffic policy", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.1"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), withPorts(8080), withLocalTraffic(map[string]string{"app": "web"})),
			wantField: fieldExternalTrafficPolicy, wantRetry: true, wantMsg: "need the same policy",
		},
		{
			desc: "dual stack required but no IPv6 pool", svc: newService("web", fixtures.WithFamilies(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol)),
			wantField: "spec.ipFamilyPolicy", wantRetry: true, wantMsg: "has IPv6 addresses",
		},
		{
			desc: "exhausted", svc: newService("web", withPorts(80)),
			wantRetry: true, wantMsg: `no free IPv4 address in IPPool "lab"; retrying in 5s`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			env := newTestEnv(t, pools)
			for _, s := range existing {
				env.mustEnsure(t, s)
			}
			if tc.desc == "exhausted" {
				env.mustEnsure(t, newService("filler"))
			}
			_, err := env.ensure(t, tc.svc)
			if err == nil {
				t.Fatal("EnsureLoadBalancer succeeded")
			}
			ie, isInput := providers.IsInputError(err)
			if tc.wantField == "" && isInput {
				t.Fatalf("got InputError %v, want none", err)
			}
			if tc.wantField != "" && (!isInput || ie.Field != tc.wantField) {
				t.Fatalf("error %v: want an InputError on %s", err, tc.wantField)
			}
			var re *api.RetryError
			if isRetry := errors.As(err, &re); isRetry != tc.wantRetry {
				t.Fatalf("error %v: RetryError = %v, want %v", err, isRetry, tc.wantRetry)
			}
			if tc.wantRetry && re.RetryAfter() != 5*time.Second {
				t.Fatalf("retry after %s, want the configured 5s", re.RetryAfter())
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not contain %q", err, tc.wantMsg)
			}
			if _, exists, _ := env.provider.GetLoadBalancer(context.Background(), "test", tc.svc); exists {
				t.Fatal("a failed Ensure left an address assigned")
			}
		})
	}
}

func TestSharingAndDualStack(t *testing.T) {
	env := newTestEnv(t, []*IPPool{newIPPool("dual", []string{"192.0.2.0/30", "2001:db8::/126"})})
	dual := fixtures.WithFamilies(v1.IPFamilyPolicyRequireDualStack, v1.IPv6Protocol, v1.IPv4Protocol)
	if got := env.mustEnsure(t, newService("a", dual, fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"))); got != "2001:db8::,192.0.2.0" {
		t.Fatalf("a got %q", got)
	}
	if got := env.mustEnsure(t, newService("b", dual, fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), withPorts(443))); got != "2001:db8::,192.0.2.0" {
		t.Fatalf("b with the same key and another port got %q, want to share a's addresses", got)
	}
	if got := env.mustEnsure(t, newService("c", fixtures.WithFamilies(v1.IPFamilyPolicyPreferDualStack, v1.IPv4Protocol, v1.IPv6Protocol))); got != "192.0.2.1,2001:db8::1" {
		t.Fatalf("c got %q", got)
	}
}

// TestRestartRebuildsFromServiceStatus starts a provider on a cluster whose
// Services already hold addresses (as after a controller restart): they keep
// them, new Services get only free ones, and the older of two Services
// claiming one address keeps it.
func TestRestartRebuildsFromServiceStatus(t *testing.T) {
	objs := []runtime.Object{
		newService("web", fixtures.WithIngress("192.0.2.2"), createdAt(1)),
		newService("shared-a", fixtures.WithIngress("192.0.2.0"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), createdAt(2)),
		newService("shared-b", fixtures.WithIngress("192.0.2.0"), fixtures.WithAnnotation(AnnotationAllowSharedIP, "k"), withPorts(443), createdAt(3)),
		newService("usurper", fixtures.WithIngress("192.0.2.2"), createdAt(4)),
		// Not LoadBalancer any more: its stale status holds nothing.
		func() runtime.Object {
			s := newService("was-lb", fixtures.WithIngress("192.0.2.1"), createdAt(5))
			s.Spec.Type = v1.ServiceTypeClusterIP
			return s
		}(),
	}
	env := newTestEnv(t, []*IPPool{newIPPool("lab", []string{"192.0.2.0/29"})}, objs...)
	for _, tc := range []struct {
		svc  *v1.Service
		want string
	}{
		{newService("new"), "192.0.2.1"},
		{objs[0].(*v1.Service), "192.0.2.2"},
		{objs[1].(*v1.Service), "192.0.2.0"},
		{objs[2].(*v1.Service), "192.0.2.0"},
		{objs[3].(*v1.Service), "192.0.2.3"},
	} {
		if got := env.mustEnsure(t, tc.svc); got != tc.want {
			t.Errorf("%s got %s, want %s", tc.svc.Name, got, tc.want)
		}
	}
}

func TestPoolAddedLaterServesWaitingService(t *testing.T) {
	env := newTestEnv(t, nil)
	_, err := env.ensure(t, newService("web"))
	var re *api.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("with no pools Ensure = %v, want a RetryError", err)
	}
	if _, err := env.dynamic.Resource(IPPoolGVR).Create(context.Background(), toUnstructured(t, newIPPool("late", []string{"203.0.113.5"})), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got string
	eventually(t, "the new pool to serve the Service", func() bool {
		got, err = env.ensure(t, newService("web"))
		return err == nil
	})
	if got != "203.0.113.5" {
		t.Fatalf("got %q", got)
	}
}

func TestOverlappingPoolIsReportedAndUnused(t *testing.T) {
	env := newTestEnv(t, []*IPPool{
		newIPPool("old", []string{"192.0.2.0/31"}, poolCreatedAt(1)),
		newIPPool("new", []string{"192.0.2.1-192.0.2.9"}, poolCreatedAt(2)),
		newIPPool("bad", []string{"192.0.2.77/24"}, poolCreatedAt(3)),
	})
	env.mustEnsure(t, newService("a"))
	env.mustEnsure(t, newService("b"))
	if _, err := env.ensure(t, newService("c")); err == nil {
		t.Fatal("the overlapping pool handed out an address")
	}
	eventually(t, "status of the overlapping and the invalid pool", func() bool {
		return strings.Contains(poolStatus(t, env, "new").Error, `overlaps 192.0.2.0-192.0.2.1 of the older IPPool "old"`) &&
			strings.Contains(poolStatus(t, env, "bad").Error, "has host bits set (did you mean 192.0.2.0/24?)") &&
			poolStatus(t, env, "old") == IPPoolStatus{AssignedIPv4: 2, AvailableIPv4: 0}
	})
}

func poolStatus(t *testing.T, env *testEnv, name string) IPPoolStatus {
	t.Helper()
	u, err := env.dynamic.Resource(IPPoolGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ipPoolFromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

// TestPoolStatusIsRateLimitedAndNotRewritten ensures a burst of Services,
// checks the pool status converges on the right counts with far fewer
// writes than allocations, and that nothing is written while the counts
// do not change.
func TestPoolStatusIsRateLimitedAndNotRewritten(t *testing.T) {
	env := newTestEnv(t, []*IPPool{newIPPool("lab", []string{"192.0.2.0/24", "2001:db8::/64"}, func(p *IPPool) { p.Spec.AvoidBuggyIPs = true })})
	statusWrites := func() int {
		n := 0
		for _, a := range env.dynamic.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	const services = 30
	before, start := statusWrites(), time.Now()
	for i := range services {
		env.mustEnsure(t, newService(fmt.Sprintf("s%d", i)))
	}
	env.mustEnsure(t, newService("v6", fixtures.WithFamilies(v1.IPFamilyPolicySingleStack, v1.IPv6Protocol)))
	want := IPPoolStatus{AssignedIPv4: services, AvailableIPv4: 254 - services, AssignedIPv6: 1, AvailableIPv6: 1<<63 - 2}
	eventually(t, "pool status", func() bool { return poolStatus(t, env, "lab") == want })
	writes := statusWrites()
	// Batched: one write round per status interval at most, so the writes
	// are bounded by the time the burst took, not by the allocations (a
	// round under way at the start, one at once on the first kick, then one
	// per interval). How long the burst takes is the machine's business.
	elapsed := time.Since(start)
	if bound := 2 + int(elapsed/env.provider.status.interval); writes-before > bound {
		t.Errorf("%d status writes for %d allocations in %v, more than one per %v status interval (%d); want them batched",
			writes-before, services+1, elapsed, env.provider.status.interval, bound)
	} else {
		t.Logf("%d status writes for %d allocations in %v", writes-before, services+1, elapsed)
	}
	for i := range services {
		env.mustEnsure(t, newService(fmt.Sprintf("s%d", i)))
	}
	// Ten status intervals for a needless write to show up: a window for a
	// bug to appear in, which a correct provider passes however slow.
	time.Sleep(200 * time.Millisecond)
	if after := statusWrites(); after != writes {
		t.Errorf("%d status writes while nothing changed", after-writes)
	}
}

// TestConcurrentEnsure runs the controller's situation: many workers
// ensuring distinct Services against a small pool. No address may be
// returned to two Services. Run with -race.
func TestConcurrentEnsure(t *testing.T) {
	env := newTestEnv(t, []*IPPool{newIPPool("small", []string{"192.0.2.0/29"})})
	var mu sync.Mutex
	owners := map[string]string{}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			svc := newService(fmt.Sprintf("s%d", i))
			st, err := env.provider.EnsureLoadBalancer(context.Background(), "test", svc, nil)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ip := ingressString(st)
			if prev, ok := owners[ip]; ok {
				t.Errorf("%s and %s both got %s", prev, svc.Name, ip)
			}
			owners[ip] = svc.Name
		})
	}
	wg.Wait()
	if len(owners) != 8 {
		t.Errorf("%d addresses handed out, want all 8", len(owners))
	}
}

func TestNamespaceSelectorUsesNamespaceLabels(t *testing.T) {
	teamA := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"team": "a"}}}
	env := newTestEnv(t, []*IPPool{
		newIPPool("general", []string{"192.0.2.0/30"}),
		newIPPool("team-a", []string{"198.51.100.0/30"}, withNamespaceSelector(map[string]string{"team": "a"})),
	}, teamA)
	inTeamA := func(s *v1.Service) { s.Namespace = "team-a" }
	if got := env.mustEnsure(t, newService("web", inTeamA, fixtures.WithAnnotation(AnnotationIPPool, "team-a"))); got != "198.51.100.0" {
		t.Fatalf("Service in team-a got %q from the team-a pool", got)
	}
	if _, err := env.ensure(t, newService("web", fixtures.WithAnnotation(AnnotationIPPool, "team-a"))); err == nil {
		t.Fatal("a Service in default got an address from the team-a pool")
	}
}

func TestBuildRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		args    []string
		env     providers.Env
		wantErr string
	}{
		{desc: "zero status interval", args: []string{"--metal-status-interval=0s"}, env: providers.Env{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}}, wantErr: "--metal-status-interval: must be positive"},
		{desc: "negative retry interval", args: []string{"--metal-retry-interval=-1s"}, env: providers.Env{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1"}}, wantErr: "--metal-retry-interval: must be positive"},
		{desc: "zero sync timeout", args: []string{"--metal-cache-sync-timeout=0s"}, wantErr: "--metal-cache-sync-timeout: must be positive"},
		{desc: "no REST config", wantErr: "needs a REST config"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := NewBuilder()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			b.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, err := b.Build(t.Context(), tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Build error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestUnsyncedCacheAsksForRetryNamingIt(t *testing.T) {
	never := func() bool { return false }
	always := func() bool { return true }
	p := newProvider(t.Context(), config{
		pools:         &dynamicPoolStore{},
		synced:        []namedSync{{"Services", always}, {"Namespaces", never}, {"IPPools", always}},
		retryInterval: time.Second, statusInterval: time.Second, syncTimeout: 50 * time.Millisecond,
	})
	_, err := p.EnsureLoadBalancer(t.Context(), "test", newService("web"), nil)
	var re *api.RetryError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "the caches of Namespaces have not synced within 50ms") {
		t.Fatalf("Ensure before sync = %v, want a RetryError naming the Namespaces cache", err)
	}
}
