package metal

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestRequestFor(t *testing.T) {
	tests := []struct {
		desc      string
		svc       *v1.Service
		want      string // fmt of the interesting Request fields
		wantField string
	}{
		{
			desc: "defaults", svc: newService("web"),
			want: "ips=[] field= pool= key= families=[IPv4] policy=SingleStack ports=[TCP/80] local=false",
		},
		{
			desc: "annotation with spaces, two families", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, " 2001:db8::5 , 192.0.2.5 ")),
			want: "ips=[2001:db8::5 192.0.2.5] field=metadata.annotations[extlb.io/load-balancer-ips] pool= key= families=[IPv4] policy=SingleStack ports=[TCP/80] local=false",
		},
		{
			desc: "legacy field", svc: newService("web", fixtures.WithLoadBalancerIP("192.0.2.9")),
			want: "ips=[192.0.2.9] field=spec.loadBalancerIP pool= key= families=[IPv4] policy=SingleStack ports=[TCP/80] local=false",
		},
		{
			desc: "legacy field agreeing with the annotation", svc: newService("web", fixtures.WithLoadBalancerIP("192.0.2.9"), fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "192.0.2.9,2001:db8::9")),
			want: "ips=[192.0.2.9 2001:db8::9] field=metadata.annotations[extlb.io/load-balancer-ips] pool= key= families=[IPv4] policy=SingleStack ports=[TCP/80] local=false",
		},
		{
			desc: "pool, key, local traffic, dual stack, UDP and defaulted protocol",
			svc: newService("web", fixtures.WithAnnotation(AnnotationIPPool, " lab "), fixtures.WithAnnotation(AnnotationAllowSharedIP, "dns"),
				withLocalTraffic(map[string]string{"app": "dns"}), fixtures.WithFamilies(v1.IPFamilyPolicyRequireDualStack, v1.IPv6Protocol, v1.IPv4Protocol),
				func(s *v1.Service) {
					s.Spec.Ports = []v1.ServicePort{{Protocol: v1.ProtocolUDP, Port: 53}, {Port: 53}}
				}),
			want: "ips=[] field= pool=lab key=dns families=[IPv6 IPv4] policy=RequireDualStack ports=[UDP/53 TCP/53] local=true",
		},
		{
			desc: "no ipFamilies (not defaulted by an API server) follows the requested address",
			svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "2001:db8::1"), func(s *v1.Service) {
				s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = nil, nil
			}),
			want: "ips=[2001:db8::1] field=metadata.annotations[extlb.io/load-balancer-ips] pool= key= families=[IPv6] policy=SingleStack ports=[TCP/80] local=false",
		},
		{desc: "empty annotation", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "")), wantField: fieldLoadBalancerIPs},
		{desc: "zoned address", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIPs, "fe80::1%eth0")), wantField: fieldLoadBalancerIPs},
		{desc: "IPv4-mapped legacy address", svc: newService("web", fixtures.WithLoadBalancerIP("::ffff:192.0.2.1")), wantField: fieldLoadBalancerIP},
		{desc: "unknown family", svc: newService("web", fixtures.WithFamilies(v1.IPFamilyPolicySingleStack, "IPv5")), wantField: "spec.ipFamilies[0]"},
		{
			desc: "valid source ranges are not the allocator's business", svc: newService("web", fixtures.WithSourceRanges("203.0.113.0/24", " 198.51.100.0/24")),
			want: "ips=[] field= pool= key= families=[IPv4] policy=SingleStack ports=[TCP/80] local=false",
		},
		{desc: "source range not a CIDR", svc: newService("web", fixtures.WithSourceRanges("203.0.113.0/24", "not-a-cidr")), wantField: "spec.loadBalancerSourceRanges[1]"},
		{desc: "source-range annotation not a CIDR", svc: newService("web", fixtures.WithAnnotation(v1.AnnotationLoadBalancerSourceRangesKey, "10.0.0.0/8,10.1")), wantField: "metadata.annotations[" + v1.AnnotationLoadBalancerSourceRangesKey + "]"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, err := requestFor(tc.svc, nil)
			if tc.wantField != "" {
				if ie, ok := providers.IsInputError(err); !ok || ie.Field != tc.wantField {
					t.Fatalf("requestFor error = %v, want an InputError on %s", err, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("ips=%v field=%s pool=%s key=%s families=%v policy=%s ports=%v local=%v",
				r.IPs, r.ipsField, r.Pool, r.SharingKey, r.Families, r.Policy, r.Ports, r.LocalTraffic)
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
