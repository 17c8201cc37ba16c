package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
	memprovider "github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/test/fixtures"
)

// TestControllerAllocatesNodePortsTheAPIServerAccepts: a Service with
// allocateLoadBalancerNodePorts: false gets node ports from the controller,
// the real API server accepts them, and the provider gets them.
func TestControllerAllocatesNodePortsTheAPIServerAccepts(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class, mem := e.admin, e.ns, e.class, e.mem
	e.start(t)

	createService(t, admin, newService(ns, "web", class, fixtures.WithoutNodePorts(), fixtures.WithPorts(fixtures.TCP(80, 0), fixtures.TCP(443, 0))))
	eventually(t, 20*time.Second, "node ports written and used", func(ctx context.Context) (bool, string) {
		svc, err := getService(ctx, admin, ns, "web")
		if err != nil {
			return false, err.Error()
		}
		lb, ok := lbFor(mem, ns, "web")
		if !ok || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, "no load balancer yet"
		}
		for i, p := range svc.Spec.Ports {
			if p.NodePort < 30000 || p.NodePort > 32767 || lb.Service.Spec.Ports[i].NodePort != p.NodePort {
				return false, fmt.Sprintf("port %d: service %d, provider %d", i, p.NodePort, lb.Service.Spec.Ports[i].NodePort)
			}
		}
		return svc.Spec.Ports[0].NodePort != svc.Spec.Ports[1].NodePort, "duplicate node ports"
	})
	if evs := events(t.Context(), admin, ns, "web"); !hasEvent(evs, "Normal AllocatedNodePorts") {
		t.Errorf("events = %v, want AllocatedNodePorts", evs)
	}
}

// TestNodePortChoiceRefusedByTheAPIServerIsRetried holds the controller's
// first node-port write of the Service back while the test changes the API
// server's state behind the controller's view, so that its first choice is
// refused for real: a port another Service took in the meantime (422) or a
// stale resourceVersion (409). It must pick again and converge. The test
// waits for the held write instead of guessing how long the controller
// takes to make it.
func TestNodePortChoiceRefusedByTheAPIServerIsRetried(t *testing.T) {
	for _, tc := range []struct {
		desc string
		// interfere runs while the controller's first node-port write,
		// made from what it saw before, is held back.
		interfere func(t *testing.T, c *cluster.Cluster, ns string, predicted int32)
		wantCode  string
	}{
		{
			desc: "port already allocated",
			interfere: func(t *testing.T, c *cluster.Cluster, ns string, predicted int32) {
				holder := newService(ns, "holder", "", fixtures.WithPorts(fixtures.TCP(80, 0)))
				holder.Spec.Type = v1.ServiceTypeNodePort
				holder.Spec.LoadBalancerClass = nil
				holder.Spec.Ports[0].NodePort = predicted
				createService(t, c.AdminClient(), holder)
			},
			wantCode: "422",
		},
		{
			desc: "service changed meanwhile",
			interfere: func(t *testing.T, c *cluster.Cluster, ns string, _ int32) {
				updateService(t, c.AdminClient(), ns, "web", func(s *v1.Service) {
					s.Annotations = map[string]string{"example.com/changed": "yes"}
				})
			},
			wantCode: "409",
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := clustertest.Start(t) // node ports are cluster-wide
			admin := c.AdminClient()
			ns := clustertest.NewNamespace(t, c)
			class := uniqueClass(t)
			portRange := controller.PortRange{Base: 32700, Size: 10}
			const seed = 42
			predicted, err := controller.NewNodePortAllocator(portRange, seed).AllocateNext("any")
			if err != nil {
				t.Fatal(err)
			}
			cfg := installController(t, c)
			writes := &writeRecorder{}
			cfg.Wrap(writes.wrap)
			hold := newWriteHold()
			cfg.Wrap(hold.wrap)
			mem := memprovider.New()
			startController(t, cfg, mem, class, func(o *manager.Options) {
				o.Controller.NodePortRange = portRange
				o.Controller.NodePortSeed = seed
			})

			createService(t, admin, newService(ns, "web", class, fixtures.WithoutNodePorts(), fixtures.WithPorts(fixtures.TCP(80, 0))))
			select {
			case <-hold.held:
			case <-time.After(30 * time.Second):
				t.Fatal("the controller did not write the Service's node ports within 30s")
			}
			tc.interfere(t, c, ns, int32(predicted))
			close(hold.release)

			eventually(t, 30*time.Second, "converged after the refusal", func(ctx context.Context) (bool, string) {
				svc, err := getService(ctx, admin, ns, "web")
				if err != nil {
					return false, err.Error()
				}
				_, ok := lbFor(mem, ns, "web")
				np := svc.Spec.Ports[0].NodePort
				return ok && portRange.Contains(int(np)), fmt.Sprintf("node port %d, load balancer %v", np, ok)
			})
			codes := writes.codes()
			if len(codes) < 2 || codes[0] != tc.wantCode || codes[len(codes)-1] != "200" {
				t.Errorf("controller's node-port writes of the Service answered %v, want %s first and 200 last", codes, tc.wantCode)
			}
			svc, _ := getService(t.Context(), admin, ns, "web")
			if tc.wantCode == "422" && svc.Spec.Ports[0].NodePort == int32(predicted) {
				t.Errorf("the Service got port %d, which the holder has", predicted)
			}
		})
	}
}

// isNodePortWrite reports whether req writes a Service's spec (not its
// status): the controller's node-port write, an Update (PUT) or a JSON
// patch guarded by the resourceVersion it read. Finalizers and status go
// as strategic-merge patches.
func isNodePortWrite(req *http.Request) bool {
	if !strings.Contains(req.URL.Path, "/services/") || strings.HasSuffix(req.URL.Path, "/status") {
		return false
	}
	return req.Method == http.MethodPut ||
		req.Method == http.MethodPatch && strings.HasPrefix(req.Header.Get("Content-Type"), "application/json-patch+json")
}

// writeRecorder records the status codes of the controller's node-port
// writes.
type writeRecorder struct {
	mu  sync.Mutex
	got []string
}

func (p *writeRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if isNodePortWrite(req) && err == nil {
			p.mu.Lock()
			p.got = append(p.got, fmt.Sprint(resp.StatusCode))
			p.mu.Unlock()
		}
		return resp, err
	})
}

func (p *writeRecorder) codes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writeHold holds the first node-port write made through it until release
// is closed: the write then carries what its client saw before, whatever
// changed on the API server meanwhile.
type writeHold struct {
	once    sync.Once
	held    chan struct{} // closed when the first write is waiting
	release chan struct{}
}

func newWriteHold() *writeHold {
	return &writeHold{held: make(chan struct{}), release: make(chan struct{})}
}

func (h *writeHold) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if isNodePortWrite(req) {
			first := false
			h.once.Do(func() { first = true; close(h.held) })
			if first {
				select {
				case <-h.release:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
		}
		return rt.RoundTrip(req)
	})
}
