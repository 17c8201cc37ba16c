package fake

import (
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/test/fixtures"
)

// newService returns a LoadBalancer Service default/<name> with a fixed
// UID and no ports.
func newService(name string, tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", name, append([]fixtures.ServiceTweak{
		fixtures.WithUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427"), fixtures.WithClusterPolicy(),
	}, tweaks...)...)
}

// withPort appends a port.
func withPort(name string, proto v1.Protocol, port, nodePort int32) fixtures.ServiceTweak {
	return fixtures.WithPort(fixtures.Port(name, proto, port, nodePort))
}

func TestSpecFromService(t *testing.T) {
	nodes := []*v1.Node{
		fixtures.Node("b", fixtures.WithInternalIP("10.0.0.2")),
		fixtures.Node("a", fixtures.WithNodeAddress(v1.NodeHostName, "a"), fixtures.WithInternalIP("10.0.0.1")),
		fixtures.Node("no-ip", fixtures.WithNodeAddress(v1.NodeExternalIP, "203.0.113.9")),
	}
	wantBackends := []api.Backend{{Name: "a", Address: "10.0.0.1"}, {Name: "b", Address: "10.0.0.2"}}
	m := mapping{healthCheckInterval: 500 * time.Millisecond}
	for _, tc := range []struct {
		desc    string
		service *v1.Service
		check   func(t *testing.T, s api.LoadBalancerSpec)
	}{
		{
			desc:    "mixed protocols, cluster policy probes the first TCP node port",
			service: newService("web", withPort("dns-udp", v1.ProtocolUDP, 53, 30053), withPort("dns-tcp", v1.ProtocolTCP, 53, 30054)),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				want := []api.Port{{Name: "dns-udp", Protocol: "UDP", Port: 53, BackendPort: 30053}, {Name: "dns-tcp", Protocol: "TCP", Port: 53, BackendPort: 30054}}
				if !reflect.DeepEqual(s.Ports, want) {
					t.Errorf("ports %+v, want %+v", s.Ports, want)
				}
				if !reflect.DeepEqual(s.Backends, wantBackends) {
					t.Errorf("backends %+v, want %+v", s.Backends, wantBackends)
				}
				if hc := s.HealthCheck; hc.Type != api.HealthCheckTCP || hc.Port != 30054 || hc.IntervalMillis != 500 {
					t.Errorf("health check %+v, want TCP on 30054 every 500ms", hc)
				}
				if s.SourceRanges != nil || s.SessionAffinity != nil {
					t.Errorf("unexpected source ranges %v or affinity %v", s.SourceRanges, s.SessionAffinity)
				}
				if s.Tags[tagService] != "default/web" || s.Tags[tagCluster] != "kind" {
					t.Errorf("tags %v", s.Tags)
				}
			},
		},
		{
			desc:    "UDP only has no health check",
			service: newService("dns", withPort("", v1.ProtocolUDP, 53, 30053)),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if s.HealthCheck.Type != api.HealthCheckNone {
					t.Errorf("health check %+v, want None", s.HealthCheck)
				}
			},
		},
		{
			desc:    "local policy probes healthCheckNodePort over HTTP",
			service: newService("web", withPort("http", v1.ProtocolTCP, 80, 30080), fixtures.WithLocalPolicy(32100)),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if hc := s.HealthCheck; hc.Type != api.HealthCheckHTTP || hc.Port != 32100 || hc.Path != "/healthz" {
					t.Errorf("health check %+v, want HTTP /healthz on 32100", hc)
				}
			},
		},
		{
			desc:    "source ranges from the spec",
			service: newService("web", withPort("", v1.ProtocolTCP, 80, 30080), fixtures.WithSourceRanges("192.0.2.0/24", "10.0.0.0/8")),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if want := []string{"10.0.0.0/8", "192.0.2.0/24"}; !reflect.DeepEqual(s.SourceRanges, want) {
					t.Errorf("source ranges %v, want %v", s.SourceRanges, want)
				}
			},
		},
		{
			desc:    "source ranges from the annotation",
			service: newService("web", withPort("", v1.ProtocolTCP, 80, 30080), fixtures.WithAnnotation(v1.AnnotationLoadBalancerSourceRangesKey, "198.51.100.0/24")),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if want := []string{"198.51.100.0/24"}; !reflect.DeepEqual(s.SourceRanges, want) {
					t.Errorf("source ranges %v, want %v", s.SourceRanges, want)
				}
			},
		},
		{
			desc:    "allow-all source range is no restriction",
			service: newService("web", withPort("", v1.ProtocolTCP, 80, 30080), fixtures.WithSourceRanges("0.0.0.0/0")),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if s.SourceRanges != nil {
					t.Errorf("source ranges %v, want none", s.SourceRanges)
				}
			},
		},
		{
			desc:    "client IP affinity with its timeout",
			service: newService("web", withPort("", v1.ProtocolTCP, 80, 30080), fixtures.WithClientIPAffinity(60)),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if sa := s.SessionAffinity; sa == nil || sa.Type != api.SessionAffinityClientIP || sa.TimeoutSeconds != 60 {
					t.Errorf("affinity %+v", sa)
				}
			},
		},
		{
			desc:    "client IP affinity default timeout",
			service: newService("web", withPort("", v1.ProtocolTCP, 80, 30080), fixtures.WithClientIPAffinity(0)),
			check: func(t *testing.T, s api.LoadBalancerSpec) {
				if sa := s.SessionAffinity; sa == nil || sa.TimeoutSeconds != 10800 {
					t.Errorf("affinity %+v, want timeout 10800", sa)
				}
			},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, err := m.spec("kind", tc.service, nodes)
			if err != nil {
				t.Fatalf("spec: %v", err)
			}
			tc.check(t, s)
		})
	}
}

func TestSpecRejectsBadServicesNamingTheField(t *testing.T) {
	m := mapping{healthCheckInterval: time.Second}
	nodes := []*v1.Node{fixtures.Node("a", fixtures.WithInternalIP("10.0.0.1"))}
	for _, tc := range []struct {
		desc, field, reason string
		service             *v1.Service
	}{
		{"SCTP port", "spec.ports[1].protocol", "TCP and UDP, not SCTP",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), withPort("b", v1.ProtocolSCTP, 90, 30090))},
		{"no node port", "spec.ports[0].nodePort", "not allocated",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 0))},
		{"no ports", "spec.ports", "at least one port", newService("s")},
		{"bad source range", "spec.loadBalancerSourceRanges[0]", "is not a CIDR",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), fixtures.WithSourceRanges("10.0.0.300/8"))},
		{"bad source range annotation", "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]", "",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), fixtures.WithAnnotation(v1.AnnotationLoadBalancerSourceRangesKey, "nonsense"))},
		{"requested IP", "spec.loadBalancerIP", "allocates addresses itself",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), fixtures.WithLoadBalancerIP("192.0.2.10"))},
		{"local policy without health check port", "spec.healthCheckNodePort", "must be set",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), fixtures.WithLocalPolicy(0))},
		{"affinity timeout too long", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "between 1 and 86400",
			newService("s", withPort("a", v1.ProtocolTCP, 80, 30080), fixtures.WithClientIPAffinity(90000))},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := m.spec("kind", tc.service, nodes)
			ie, ok := providers.IsInputError(err)
			if !ok {
				t.Fatalf("error %v is not an InputError", err)
			}
			if ie.Field != tc.field || !strings.Contains(ie.Reason, tc.reason) {
				t.Errorf("got %q / %q, want field %q with reason containing %q", ie.Field, ie.Reason, tc.field, tc.reason)
			}
		})
	}
}

func TestLoadBalancerName(t *testing.T) {
	svc := newService("web")
	for _, tc := range []struct{ desc, cluster, want string }{
		{"plain cluster", "kind", "kind-a1b4e28ba2fa111d2883f0016d3cca42"},
		{"cluster name made a label", "My_Cluster.prod", "my-cluster-prod-a1b4e28ba2fa111d2883f0016d3cca42"},
		{"long cluster name cut", strings.Repeat("x", 80), strings.Repeat("x", 30) + "-a1b4e28ba2fa111d2883f0016d3cca42"},
		{"no cluster name", "", "a1b4e28ba2fa111d2883f0016d3cca42"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := loadBalancerName(tc.cluster, svc)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if err := api.ValidateName(got); err != nil {
				t.Errorf("name is not valid for the fake cloud: %v", err)
			}
		})
	}
}
