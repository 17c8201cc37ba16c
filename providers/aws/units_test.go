package aws

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/extlb/extlb/test/fixtures"
)

func TestInstanceIDFromProviderID(t *testing.T) {
	for _, tc := range []struct {
		desc, providerID, want string
	}{
		{"zone form", "aws:///us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"},
		{"short instance ID", "aws:///eu-west-1b/i-0123abcd", "i-0123abcd"},
		{"no zone", "aws:///i-0123456789abcdef0", "i-0123456789abcdef0"},
		{"zone without the third slash", "aws://us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"},
		{"empty", "", ""},
		{"other cloud", "gce://project/zone/node", ""},
		{"not an instance", "aws:///us-east-1a/vol-0123456789abcdef0", ""},
		{"upper case", "aws:///us-east-1a/i-0123456789ABCDEF0", ""},
		{"trailing junk", "aws:///us-east-1a/i-0123456789abcdef0/x", ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := instanceID(tc.providerID)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("instanceID(%q) = %q, %v; want %q", tc.providerID, got, ok, tc.want)
			}
		})
	}
}

func TestNamesAreDeterministicValidAndDistinct(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$`)
	svc := newService("web")
	a, b := ownerOf("prod", svc), ownerOf("prod", svc)
	if a.loadBalancerName() != b.loadBalancerName() {
		t.Errorf("name not deterministic")
	}
	other := newService("web")
	other.UID = types.UID("another-uid")
	l := listenerSpec{port: 80, nodePort: 30080, protocol: "TCP"}
	names := []string{
		a.loadBalancerName(), ownerOf("staging", svc).loadBalancerName(), ownerOf("prod", other).loadBalancerName(),
		a.targetGroupName(l), a.targetGroupName(listenerSpec{port: 80, nodePort: 30081, protocol: "TCP"}),
		a.targetGroupName(listenerSpec{port: 80, nodePort: 30080, protocol: "TCP_UDP"}),
	}
	for _, n := range names {
		if len(n) != 32 || !valid.MatchString(n) {
			t.Errorf("name %q is not a valid 32-character AWS name", n)
		}
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(names) {
		t.Errorf("names collide: %v", names)
	}
}

func TestParseHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		desc string
		svc  *v1.Service
		want healthCheck
	}{
		{"cluster: TCP on the traffic port", newService("s"), healthCheck{"TCP", "traffic-port", "", 10, 6, 2, 2}},
		{"local: HTTP /healthz on the health check node port", newService("s", fixtures.WithLocalPolicy(32123)), healthCheck{"HTTP", "32123", "/healthz", 10, 6, 2, 2}},
		{"local with TCP override keeps the port", newService("s", fixtures.WithLocalPolicy(32123), fixtures.WithAnnotation(AnnotationHCProtocol, "TCP")), healthCheck{"TCP", "32123", "", 10, 6, 2, 2}},
		{"cluster with HTTP override gets path /", newService("s", fixtures.WithAnnotation(AnnotationHCProtocol, "HTTP")), healthCheck{"HTTP", "traffic-port", "/", 10, 6, 2, 2}},
		{"short interval shortens the default timeout", newService("s", fixtures.WithAnnotation(AnnotationHCInterval, "5")), healthCheck{"TCP", "traffic-port", "", 5, 4, 2, 2}},
		{"https with port and path", newService("s", fixtures.WithAnnotation(AnnotationHCProtocol, "https"), fixtures.WithAnnotation(AnnotationHCPort, "8443"), fixtures.WithAnnotation(AnnotationHCPath, "/live")),
			healthCheck{"HTTPS", "8443", "/live", 10, 6, 2, 2}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parseHealthCheck(tc.svc)
			if err != nil || got != tc.want {
				t.Errorf("parseHealthCheck = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParsePortsMergesTCPAndUDPIntoTCPUDP(t *testing.T) {
	svc := newService("s", withPort(443, 30443, v1.ProtocolTCP), withPort(53, 30053, v1.ProtocolUDP), withPort(53, 30053, v1.ProtocolTCP), withPort(80, 30080, ""))
	got, err := parsePorts(svc.Spec.Ports)
	want := []listenerSpec{{53, 30053, "TCP_UDP"}, {80, 30080, "TCP"}, {443, 30443, "TCP"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parsePorts = %+v, %v; want %+v", got, err, want)
	}
}

func TestDesiredRules(t *testing.T) {
	subnets := []string{"10.0.1.0/24", "10.0.2.0/24"}
	for _, tc := range []struct {
		desc string
		svc  *v1.Service
		want []string
	}{
		{"open world, traffic-port health check needs no extra rule", newService("s", withPort(80, 30080, v1.ProtocolTCP)),
			[]string{"tcp 30080 0.0.0.0/0 traffic"}},
		{"UDP only: the TCP health check on the node port comes from the subnets", newService("s", withPort(53, 30053, v1.ProtocolUDP)),
			[]string{"tcp 30053 10.0.1.0/24 health check", "tcp 30053 10.0.2.0/24 health check", "udp 30053 0.0.0.0/0 traffic"}},
		{"source ranges and local policy", newService("s", withPort(80, 30080, v1.ProtocolTCP), fixtures.WithSourceRanges("192.0.2.0/24"), fixtures.WithLocalPolicy(32000)),
			[]string{"tcp 30080 192.0.2.0/24 traffic", "tcp 32000 10.0.1.0/24 health check", "tcp 32000 10.0.2.0/24 health check"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			spec, err := parseService(tc.svc)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k, purpose := range desiredRules(spec, []string{"sg-1"}, subnets) {
				got = append(got, fmt.Sprintf("%s %d %s %s", k.protocol, k.port, k.cidr, purpose))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules = %v, want %v", got, tc.want)
			}
		})
	}
}
