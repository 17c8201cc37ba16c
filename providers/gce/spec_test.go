package gce

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func TestInvalidInputIsAnInputErrorBeforeAnyCall(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		svc       *v1.Service
		wantField string
	}{
		{desc: "SCTP port", svc: newService("web", withPorts("80/TCP", "9000/SCTP")), wantField: "spec.ports[1].protocol"},
		{desc: "no ports", svc: newService("web", withPorts()), wantField: "spec.ports"},
		{desc: "duplicate port", svc: newService("web", withPorts("80/TCP", "80/TCP")), wantField: "spec.ports[1].port"},
		{desc: "bad source range", svc: newService("web", fixtures.WithSourceRanges("192.0.2.0/24", "10.0.0.0/33")), wantField: "spec.loadBalancerSourceRanges[1]"},
		{desc: "IPv6 source range", svc: newService("web", fixtures.WithSourceRanges("2001:db8::/32")), wantField: "spec.loadBalancerSourceRanges[0]"},
		{desc: "bad source-range annotation", svc: newService("web", fixtures.WithAnnotation(providers.AnnotationSourceRanges, "192.0.2.0/24,nonsense")),
			wantField: "metadata.annotations[" + providers.AnnotationSourceRanges + "]"},
		{desc: "requested IP not an IP", svc: newService("web", fixtures.WithLoadBalancerIP("300.1.2.3")), wantField: "spec.loadBalancerIP"},
		{desc: "requested IP is IPv6", svc: newService("web", fixtures.WithAnnotation(AnnotationLoadBalancerIP, "2001:db8::1")),
			wantField: "metadata.annotations[" + AnnotationLoadBalancerIP + "]"},
		{desc: "requested IP is private", svc: newService("web", fixtures.WithLoadBalancerIP("10.1.2.3")), wantField: "spec.loadBalancerIP"},
		{desc: "annotation and spec disagree", svc: newService("web", fixtures.WithLoadBalancerIP("198.51.100.1"), fixtures.WithAnnotation(AnnotationLoadBalancerIP, "198.51.100.2")),
			wantField: "metadata.annotations[" + AnnotationLoadBalancerIP + "]"},
		{desc: "local policy without health-check node port", svc: newService("web", fixtures.WithLocalPolicy(0)), wantField: "spec.healthCheckNodePort"},
		{desc: "IPv6-only Service", svc: newService("web", func(s *v1.Service) { s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol} }), wantField: "spec.ipFamilies"},
		{desc: "no UID", svc: newService("web", func(s *v1.Service) { s.UID = "" }), wantField: "metadata.uid"},
		// Security: an internal load balancer is refused, never built
		// external on a public address.
		{desc: "GKE internal load balancer", svc: newService("web", fixtures.WithAnnotation(annotationGKELBType, "Internal")), wantField: "metadata.annotations[" + annotationGKELBType + "]"},
		{desc: "legacy internal load balancer", svc: newService("web", fixtures.WithAnnotation(annotationLegacyLBType, "Internal")), wantField: "metadata.annotations[" + annotationLegacyLBType + "]"},
		{desc: "Standard network tier", svc: newService("web", fixtures.WithAnnotation(annotationNetworkTier, "Standard")), wantField: "metadata.annotations[" + annotationNetworkTier + "]"},
		{desc: "internal subnet", svc: newService("web", fixtures.WithAnnotation("networking.gke.io/internal-load-balancer-subnet", "s")), wantField: "metadata.annotations[networking.gke.io/internal-load-balancer-subnet]"},
		{desc: "another provider's extlb annotation", svc: newService("web", fixtures.WithAnnotation("extlb.io/ip-pool", "p")), wantField: "metadata.annotations[extlb.io/ip-pool]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newTestEnv(t)
			nodes := e.nodes(1)
			_, err := e.p.EnsureLoadBalancer(e.ctx, testCluster, tc.svc, nodes)
			ie, ok := providers.IsInputError(err)
			if !ok {
				t.Fatalf("err = %v, want an InputError", err)
			}
			if ie.Field != tc.wantField || ie.Reason == "" {
				t.Errorf("InputError field %q reason %q, want field %q", ie.Field, ie.Reason, tc.wantField)
			}
			if err := e.p.UpdateLoadBalancer(e.ctx, testCluster, tc.svc, nodes); err == nil {
				t.Errorf("UpdateLoadBalancer accepted the invalid Service")
			}
			if calls := e.srv.Calls(); len(calls) != 0 {
				t.Errorf("invalid input reached the API: %v", calls)
			}
		})
	}
}

func TestSpecDefaults(t *testing.T) {
	s, err := specFor("c", newService("web", fixtures.WithAnnotation(providers.AnnotationSourceRanges, " 192.0.2.7/24 , 192.0.2.0/24"), withPorts("443/TCP", "80/TCP")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.sourceRanges, ",") != "192.0.2.0/24" {
		t.Errorf("source ranges = %v, want the one masked range", s.sourceRanges)
	}
	if s.portRange(v1.ProtocolTCP) != "80-443" || s.healthPort != kubeProxyHealthPort || s.local || s.affinity != "NONE" {
		t.Errorf("spec = %+v", s)
	}
	s, err = specFor("c", newService("web"))
	if err != nil || strings.Join(s.sourceRanges, ",") != "0.0.0.0/0" {
		t.Errorf("default source ranges = %v (%v), want 0.0.0.0/0", s.sourceRanges, err)
	}
}

func TestNamesAreValidDeterministicAndDistinct(t *testing.T) {
	gceName := regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	for _, tc := range []struct {
		desc, cluster, uid string
	}{
		{desc: "typical", cluster: "prod", uid: "6f0ad1f3-5b0e-4c51-9c47-1d8a3c8b2e11"},
		{desc: "long cluster name", cluster: strings.Repeat("cluster", 40), uid: "6F0AD1F3-5B0E-4C51-9C47-1D8A3C8B2E11"},
		{desc: "short uid", cluster: "c", uid: "abc"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			n := namesFor(tc.cluster, tc.uid)
			all := []string{n.base, n.firewall, n.healthCheck, n.healthCheckFirewall, n.sharedHealthCheck, n.sharedHealthCheckFirewall, n.rule(v1.ProtocolTCP), n.rule(v1.ProtocolUDP)}
			for _, name := range all {
				if !gceName.MatchString(name) {
					t.Errorf("%q is not a valid GCE name", name)
				}
			}
			if namesFor(tc.cluster, tc.uid) != n {
				t.Errorf("names are not deterministic")
			}
			if namesFor(tc.cluster+"x", tc.uid).base == n.base || namesFor(tc.cluster, tc.uid+"1").base == n.base {
				t.Errorf("different cluster or UID gives the same base name %s", n.base)
			}
		})
	}
}

func TestOwnership(t *testing.T) {
	o := owner{Cluster: "c", Service: "ns/web"}
	if got := o.description(); got != `{"kubernetes.io/cluster":"c","kubernetes.io/service-name":"ns/web"}` {
		t.Errorf("description = %s", got)
	}
	for _, tc := range []struct {
		desc, description string
		want              bool
	}{
		{desc: "ours", description: o.description(), want: true},
		{desc: "empty", description: "", want: false},
		{desc: "free text", description: "my address", want: false},
		{desc: "other cluster", description: owner{Cluster: "d", Service: "ns/web"}.description(), want: false},
		{desc: "other service", description: owner{Cluster: "c", Service: "ns/api"}.description(), want: false},
		{desc: "shared of our cluster", description: owner{Cluster: "c"}.description(), want: false},
	} {
		if got := o.owns(tc.description); got != tc.want {
			t.Errorf("%s: owns(%q) = %v, want %v", tc.desc, tc.description, got, tc.want)
		}
	}
}

func TestBuildRejectsBadFlags(t *testing.T) {
	good := DefaultOptions()
	good.Project, good.Region, good.Endpoint = "extlb-test", "us-central1", "http://127.0.0.1:1"
	for _, tc := range []struct {
		desc     string
		tweak    func(*Options)
		cluster  string
		wantFlag string
	}{
		{desc: "no project", tweak: func(o *Options) { o.Project = "" }, wantFlag: "--gce-project"},
		{desc: "bad region", tweak: func(o *Options) { o.Region = "us_central1" }, wantFlag: "--gce-region"},
		{desc: "bad network", tweak: func(o *Options) { o.Network = "Default Net" }, wantFlag: "--gce-network"},
		{desc: "bad endpoint", tweak: func(o *Options) { o.Endpoint = "ftp://x" }, wantFlag: "--gce-endpoint"},
		{desc: "bad node tag", tweak: func(o *Options) { o.NodeTags = []string{"ok", "Not OK"} }, wantFlag: "--gce-node-tags"},
		{desc: "batch too large", tweak: func(o *Options) { o.InstanceBatchSize = 5000 }, wantFlag: "--gce-instance-batch-size"},
		{desc: "retry waits reversed", tweak: func(o *Options) { o.RetryWaitMin = time.Minute }, wantFlag: "--gce-http-retry-wait-min"},
		{desc: "no cluster name", tweak: func(o *Options) {}, cluster: "-", wantFlag: "--cluster-name"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			o := good
			tc.tweak(&o)
			cluster := "c"
			if tc.cluster == "-" {
				cluster = ""
			}
			_, err := (&Builder{Options: o}).Build(context.Background(), providers.Env{ClusterName: cluster})
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantFlag) {
				t.Errorf("err = %v, want one starting with %s", err, tc.wantFlag)
			}
		})
	}
}

func TestParseProviderID(t *testing.T) {
	for _, tc := range []struct {
		desc, id string
		ok       bool
	}{
		{desc: "valid", id: "gce://p/us-central1-a/node-1", ok: true},
		{desc: "aws", id: "aws:///us-east-1a/i-123", ok: false},
		{desc: "missing name", id: "gce://p/us-central1-a/", ok: false},
		{desc: "empty", id: "", ok: false},
	} {
		if _, _, _, ok := parseProviderID(tc.id); ok != tc.ok {
			t.Errorf("%s: parseProviderID(%q) ok = %v, want %v", tc.desc, tc.id, ok, tc.ok)
		}
	}
}

// What the gce provider builds anyway is accepted when a Service asks for
// it by the anchor's annotations; RBS Services go to GKE's controller.
func TestAnchorAnnotationsItBuildsAreAccepted(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		tweak     fixtures.ServiceTweak
		elsewhere bool
	}{
		{desc: "External type", tweak: fixtures.WithAnnotation(annotationGKELBType, "External")},
		{desc: "legacy External type", tweak: fixtures.WithAnnotation(annotationLegacyLBType, "external")},
		{desc: "Premium tier", tweak: fixtures.WithAnnotation(annotationNetworkTier, "Premium")},
		{desc: "an annotation of another GKE controller", tweak: fixtures.WithAnnotation("cloud.google.com/neg", `{"ingress":true}`)},
		{desc: "RBS handed over", tweak: fixtures.WithAnnotation(annotationL4RBS, "enabled"), elsewhere: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := checkAnnotations(newService("web", tc.tweak))
			if tc.elsewhere {
				if !errors.Is(err, cloudprovider.ImplementedElsewhere) {
					t.Errorf("err = %v, want ImplementedElsewhere", err)
				}
				return
			}
			if err != nil {
				t.Errorf("err = %v, want none", err)
			}
		})
	}
}
