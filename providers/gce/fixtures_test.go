package gce

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	fakegce "github.com/extlb/extlb/fake/gce"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

const (
	testProject = "extlb-test"
	testRegion  = "us-central1"
	testZone    = "us-central1-a"
	testCluster = "test-cluster"
)

// testEnv is a provider built by Builder against a fake GCE.
type testEnv struct {
	t   testing.TB
	ctx context.Context
	srv *fakegce.Server
	url string
	p   *Provider
}

func (e *testEnv) endpoint() string { return e.url }

// newTestEnv starts a fake GCE and builds the provider against it with
// short retry waits.
func newTestEnv(t testing.TB, tweaks ...func(*Options)) *testEnv {
	t.Helper()
	srv := fakegce.New(testProject)
	hs := srv.Start()
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := DefaultOptions()
	opts.Project, opts.Region, opts.Endpoint = testProject, testRegion, hs.URL
	opts.HTTPRetries, opts.RetryWaitMin, opts.RetryWaitMax = 3, time.Millisecond, 5*time.Millisecond
	for _, tw := range tweaks {
		tw(&opts)
	}
	lb, err := (&Builder{Options: opts}).Build(ctx, providers.Env{ClusterName: testCluster})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return &testEnv{t: t, ctx: ctx, srv: srv, url: hs.URL, p: lb.(*Provider)}
}

// nodes registers n instances (node-0 ...) in the fake, tagged, and returns
// their Node objects.
func (e *testEnv) nodes(n int, tags ...string) []*v1.Node {
	if len(tags) == 0 {
		tags = []string{"k8s-node", "http-server"}
	}
	var out []*v1.Node
	for i := range n {
		name := fmt.Sprintf("node-%d", i)
		e.srv.AddInstance(testZone, name, tags...)
		out = append(out, fixtures.Node(name, fixtures.WithProviderID(fmt.Sprintf("gce://%s/%s/%s", testProject, testZone, name))))
	}
	return out
}

func (e *testEnv) ensure(svc *v1.Service, nodes []*v1.Node) *v1.LoadBalancerStatus {
	e.t.Helper()
	st, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, svc, nodes)
	if err != nil {
		e.t.Fatalf("EnsureLoadBalancer(%s): %v", svc.Name, err)
	}
	return st
}

func (e *testEnv) remove(svc *v1.Service) {
	e.t.Helper()
	if err := e.p.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		e.t.Fatalf("EnsureLoadBalancerDeleted(%s): %v", svc.Name, err)
	}
}

// writes returns the write calls logged since the last ResetCalls, as
// "METHOD path" strings.
func (e *testEnv) writes() []string {
	var out []string
	for _, c := range e.srv.Calls() {
		if c.Write {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

func countMatching(calls []string, substr string) int {
	n := 0
	for _, c := range calls {
		if strings.Contains(c, substr) {
			n++
		}
	}
	return n
}

// newService returns a LoadBalancer Service in namespace "default" with a
// UID derived from its name and TCP port 80.
func newService(name string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-" + name + "-0123456789abcdef"), fixtures.WithClusterPolicy(),
		fixtures.WithPorts(fixtures.Port("p80", v1.ProtocolTCP, 80, 30080)),
	}, tweaks...)...)
}

// withPorts replaces the ports; each is "80/TCP", named p<index>, on node
// port 30000+<index>, with the port as its target port.
func withPorts(specs ...string) fixtures.ServiceTweak {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for i, spec := range specs {
			var port int32
			var proto string
			fmt.Sscanf(strings.Replace(spec, "/", " ", 1), "%d %s", &port, &proto)
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{
				Name: fmt.Sprintf("p%d", i), Protocol: v1.Protocol(proto), Port: port,
				NodePort: 30000 + int32(i), TargetPort: intstr.FromInt32(port),
			})
		}
	}
}

func ownerOf(svc *v1.Service) owner {
	return owner{Cluster: testCluster, Service: svc.Namespace + "/" + svc.Name}
}

func namesOf(svc *v1.Service) resourceNames { return namesFor(testCluster, string(svc.UID)) }
