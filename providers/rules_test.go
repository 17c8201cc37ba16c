package providers_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

func newService(tweaks ...fixtures.ServiceTweak) *v1.Service {
	return fixtures.Service("default", "web", append([]fixtures.ServiceTweak{
		fixtures.WithUID("uid-web"), fixtures.WithPorts(fixtures.TCP(80, 30080)),
	}, tweaks...)...)
}

func TestSourceRanges(t *testing.T) {
	const annotation = "metadata.annotations[" + providers.AnnotationSourceRanges + "]"
	for _, tc := range []struct {
		desc    string
		svc     *v1.Service
		want    []string // prefix@field
		wantErr string   // field: reason, when an InputError is expected
	}{
		{desc: "none: no restriction", svc: newService()},
		{desc: "empty annotation: no restriction", svc: newService(fixtures.WithAnnotation(providers.AnnotationSourceRanges, "  "))},
		{desc: "field, masked, sorted, IPv4 first",
			svc:  newService(fixtures.WithSourceRanges("2001:db8::1/32", " 198.51.100.7/24 ", "10.0.0.0/8")),
			want: []string{"10.0.0.0/8@spec.loadBalancerSourceRanges[2]", "198.51.100.0/24@spec.loadBalancerSourceRanges[1]", "2001:db8::/32@spec.loadBalancerSourceRanges[0]"}},
		{desc: "duplicates after masking are kept once",
			svc:  newService(fixtures.WithSourceRanges("10.1.0.0/16", "10.1.2.3/16")),
			want: []string{"10.1.0.0/16@spec.loadBalancerSourceRanges[0]"}},
		{desc: "annotation when the field is empty",
			svc:  newService(fixtures.WithAnnotation(providers.AnnotationSourceRanges, "203.0.113.0/24, 192.0.2.0/24")),
			want: []string{"192.0.2.0/24@" + annotation, "203.0.113.0/24@" + annotation}},
		{desc: "the field wins over the annotation",
			svc:  newService(fixtures.WithSourceRanges("10.0.0.0/8"), fixtures.WithAnnotation(providers.AnnotationSourceRanges, "not-a-cidr")),
			want: []string{"10.0.0.0/8@spec.loadBalancerSourceRanges[0]"}},
		{desc: "bad field entry names its index",
			svc:     newService(fixtures.WithSourceRanges("10.0.0.0/8", "10.0.0.300/8")),
			wantErr: `spec.loadBalancerSourceRanges[1]: "10.0.0.300/8" is not a CIDR such as 203.0.113.0/24`},
		{desc: "address without a length is refused",
			svc:     newService(fixtures.WithSourceRanges("10.0.0.1")),
			wantErr: `spec.loadBalancerSourceRanges[0]: "10.0.0.1" is not a CIDR`},
		{desc: "bad annotation entry names the annotation",
			svc:     newService(fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,bogus")),
			wantErr: annotation + `: "bogus" is not a CIDR such as 203.0.113.0/24`},
		{desc: "trailing comma in the annotation is an empty entry",
			svc:     newService(fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,")),
			wantErr: annotation + `: "" is not a CIDR`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := providers.SourceRanges(tc.svc)
			if tc.wantErr != "" {
				if _, ok := providers.IsInputError(err); !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want an InputError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, r := range got {
				gotS = append(gotS, r.Prefix.String()+"@"+r.Field)
			}
			if strings.Join(gotS, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %v, want %v", gotS, tc.want)
			}
		})
	}
}

// TestSourceRangesAcceptWhatUpstreamAccepts compares the verdict with the
// upstream service helpers' (an oracle we did not write) on the inputs
// where both must agree: what upstream refuses, we refuse, and the other
// way round, and the ranges are the same set.
func TestSourceRangesAcceptWhatUpstreamAccepts(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		tweak fixtures.ServiceTweak
	}{
		{desc: "none", tweak: fixtures.Tweaks()},
		{desc: "field", tweak: fixtures.WithSourceRanges("10.0.0.0/8", "192.0.2.0/24")},
		{desc: "field with spaces", tweak: fixtures.WithSourceRanges(" 10.0.0.0/8 ")},
		{desc: "field IPv6", tweak: fixtures.WithSourceRanges("2001:db8::/32")},
		{desc: "field bad", tweak: fixtures.WithSourceRanges("10.0.0.0/33")},
		{desc: "field bare address", tweak: fixtures.WithSourceRanges("10.0.0.1")},
		{desc: "annotation", tweak: fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,192.0.2.0/24")},
		{desc: "annotation spaces", tweak: fixtures.WithAnnotation(providers.AnnotationSourceRanges, " 10.0.0.0/8 , 192.0.2.0/24 ")},
		{desc: "annotation bad", tweak: fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,nope")},
		{desc: "annotation trailing comma", tweak: fixtures.WithAnnotation(providers.AnnotationSourceRanges, "10.0.0.0/8,")},
		{desc: "annotation ignored under the field", tweak: fixtures.Tweaks(fixtures.WithSourceRanges("10.0.0.0/8"), fixtures.WithAnnotation(providers.AnnotationSourceRanges, "nope"))},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			svc := newService(tc.tweak)
			upstream, upErr := servicehelpers.GetLoadBalancerSourceRanges(svc)
			ours, err := providers.SourceRanges(svc)
			if (upErr == nil) != (err == nil) {
				t.Fatalf("upstream error %v, ours %v", upErr, err)
			}
			if err != nil {
				return
			}
			want := map[string]bool{}
			if !servicehelpers.IsAllowAll(upstream) {
				for _, s := range upstream.StringSlice() {
					want[netip.MustParsePrefix(s).Masked().String()] = true
				}
			}
			if len(ours) != len(want) {
				t.Fatalf("ours %v, upstream %v", ours, upstream.StringSlice())
			}
			for _, r := range ours {
				if !want[r.Prefix.String()] {
					t.Errorf("%s not in upstream's %v", r.Prefix, upstream.StringSlice())
				}
			}
		})
	}
}

func TestValidateService(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		svc     *v1.Service
		wantErr string
	}{
		{desc: "valid", svc: newService()},
		{desc: "same port on TCP and UDP", svc: newService(fixtures.WithPorts(fixtures.Port("a", v1.ProtocolTCP, 53, 0), fixtures.Port("b", v1.ProtocolUDP, 53, 0)))},
		{desc: "duplicate port and protocol", svc: newService(fixtures.WithPorts(fixtures.TCP(80, 0), fixtures.TCP(80, 0))), wantErr: "spec.ports[1].port: port 80/TCP is also used by spec.ports[0]"},
		{desc: "bad source range", svc: newService(fixtures.WithSourceRanges("x")), wantErr: "spec.loadBalancerSourceRanges[0]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := providers.ValidateService(tc.svc)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, ok := providers.IsInputError(err); !ok || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want an InputError containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestValidatingRefusesBeforeTheProvider: under a cloud-controller-manager
// the wrapper refuses exactly what the controller refuses, without calling
// the provider, and never blocks a delete.
func TestValidatingRefusesBeforeTheProvider(t *testing.T) {
	mem := memory.New(memory.WithCapabilities(providers.Capabilities{TargetsNodePorts: false}))
	lb := providers.Validating(mem)
	if providers.Validating(lb) != lb {
		t.Error("Validating of a validating provider wraps it twice")
	}
	if got := providers.CapabilitiesOf(lb); got.TargetsNodePorts {
		t.Errorf("capabilities %+v, want the wrapped provider's", got)
	}
	bad := newService(fixtures.WithSourceRanges("bogus"))
	ctx := context.Background()
	if _, err := lb.EnsureLoadBalancer(ctx, "c", bad, nil); !isInput(err) {
		t.Errorf("ensure: %v, want an InputError", err)
	}
	if err := lb.UpdateLoadBalancer(ctx, "c", bad, nil); !isInput(err) {
		t.Errorf("update: %v, want an InputError", err)
	}
	if n := len(mem.Calls()); n != 0 {
		t.Errorf("the provider was called %d times for an invalid Service: %v", n, mem.Calls())
	}
	if err := lb.EnsureLoadBalancerDeleted(ctx, "c", bad); err != nil {
		t.Errorf("delete of an invalid Service: %v", err)
	}
	if _, err := lb.EnsureLoadBalancer(ctx, "c", newService(), nil); err != nil {
		t.Errorf("ensure of a valid Service: %v", err)
	}
}

func isInput(err error) bool {
	var ie *providers.InputError
	return errors.As(err, &ie)
}

func TestClassFilter(t *testing.T) {
	metal := providers.DefaultClassFilter("metal")
	if metal.Name != "extlb.io/metal" || metal.Default != providers.ServeNoClassByDefault {
		t.Fatalf("DefaultClassFilter(metal) = %+v", metal)
	}
	for _, tc := range []struct {
		desc   string
		filter providers.ClassFilter
		svc    *v1.Service
		serves bool
	}{
		{desc: "own class", filter: metal, svc: newService(fixtures.WithClass("extlb.io/metal")), serves: true},
		{desc: "other class", filter: metal, svc: newService(fixtures.WithClass("example.com/lb"))},
		{desc: "no class, default on", filter: metal, svc: newService(fixtures.WithoutClass()), serves: true},
		{desc: "no class, default off", filter: providers.ClassFilter{Name: "extlb.io/metal"}, svc: newService(fixtures.WithoutClass())},
		{desc: "not a LoadBalancer", filter: metal, svc: newService(fixtures.WithClass("extlb.io/metal"), fixtures.WithType(v1.ServiceTypeNodePort))},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.filter.Serves(tc.svc); got != tc.serves {
				t.Errorf("Serves = %v, want %v", got, tc.serves)
			}
		})
	}
}

func TestNodeExclusion(t *testing.T) {
	ready := func(tweaks ...fixtures.NodeTweak) *v1.Node {
		return fixtures.Node("n1", append([]fixtures.NodeTweak{fixtures.WithReady()}, tweaks...)...)
	}
	for _, tc := range []struct {
		desc     string
		node     *v1.Node
		excluded bool
	}{
		{desc: "ordinary node", node: ready()},
		{desc: "exclude label without a value", node: ready(fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "")), excluded: true},
		{desc: "exclude label true", node: ready(fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "true")), excluded: true},
		{desc: "exclude label that is no boolean", node: ready(fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "yes")), excluded: true},
		// As upstream's nodeIncludedPredicate: a value that parses as
		// false keeps the node (this was a bug: any value excluded it).
		{desc: "exclude label false keeps the node", node: ready(fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "false"))},
		{desc: "exclude label 0 keeps the node", node: ready(fixtures.WithNodeLabel(providers.LabelExcludeFromLB, "0"))},
		{desc: "being deleted", node: ready(fixtures.WithNodeDeletion()), excluded: true},
		{desc: "cluster autoscaler deletion taint", node: ready(fixtures.WithTaint(providers.TaintToBeDeletedByClusterAutoscaler, v1.TaintEffectNoSchedule)), excluded: true},
		{desc: "uninitialized by the cloud controller manager", node: ready(fixtures.WithTaint(providers.TaintUninitialized, v1.TaintEffectNoSchedule)), excluded: true},
		{desc: "unrelated taint", node: ready(fixtures.WithTaint("example.com/gpu", v1.TaintEffectNoSchedule))},
		{desc: "not ready nodes stay (stable node set)", node: fixtures.Node("n1")},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := providers.NodeExclusion(tc.node) != ""; got != tc.excluded {
				t.Errorf("excluded = %v (%q), want %v", got, providers.NodeExclusion(tc.node), tc.excluded)
			}
		})
	}
}

func TestAnnotationsCheck(t *testing.T) {
	a := providers.Annotations{
		Implemented: []string{"example.com/lb-size", "extlb.io/mine"},
		Prefixes:    []string{"example.com/lb-"},
		Refused:     map[string]string{"other.example/tls": "TLS is not implemented"},
	}
	for _, tc := range []struct {
		desc      string
		tweak     fixtures.ServiceTweak
		wantField string // "" when accepted
		wantText  string
	}{
		{desc: "none", tweak: fixtures.Tweaks()},
		{desc: "implemented", tweak: fixtures.Tweaks(fixtures.WithAnnotation("example.com/lb-size", "2"), fixtures.WithAnnotation("extlb.io/mine", "x"))},
		{desc: "the controller's own", tweak: fixtures.WithAnnotation(providers.AnnotationServedByClass, "extlb.io/x")},
		{desc: "someone else's namespace", tweak: fixtures.WithAnnotation("team.example/owner", "me")},
		{desc: "unknown in a prefix the provider answers for", tweak: fixtures.WithAnnotation("example.com/lb-colour", "red"),
			wantField: "metadata.annotations[example.com/lb-colour]", wantText: "it implements: example.com/lb-size, extlb.io/mine"},
		{desc: "unknown in extlb's namespace", tweak: fixtures.WithAnnotation("extlb.io/typo", "1"), wantField: "metadata.annotations[extlb.io/typo]"},
		{desc: "unknown in an extlb subdomain", tweak: fixtures.WithAnnotation("gce.extlb.io/typo", "1"), wantField: "metadata.annotations[gce.extlb.io/typo]"},
		{desc: "refused with a reason", tweak: fixtures.WithAnnotation("other.example/tls", "on"), wantField: "metadata.annotations[other.example/tls]", wantText: "TLS is not implemented"},
		{desc: "first refused in name order", tweak: fixtures.Tweaks(fixtures.WithAnnotation("extlb.io/zz", "1"), fixtures.WithAnnotation("extlb.io/aa", "1")), wantField: "metadata.annotations[extlb.io/aa]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := a.Check(newService(tc.tweak))
			if tc.wantField == "" {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			ie, ok := providers.IsInputError(err)
			if !ok || ie.Field != tc.wantField || !strings.Contains(ie.Reason, tc.wantText) {
				t.Errorf("Check = %v, want an InputError for %s containing %q", err, tc.wantField, tc.wantText)
			}
		})
	}
}
