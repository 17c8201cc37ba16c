package aws

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/extlb/extlb/providers"
)

// isolateSDK keeps the SDK's default chain away from this machine's files
// and instance metadata.
func isolateSDK(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDBUILDER")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "builder-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
}

func buildWith(t *testing.T, cluster string, args ...string) (providers.LoadBalancer, error) {
	b := NewBuilder()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	b.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	return b.Build(t.Context(), providers.Env{ClusterName: cluster})
}

func TestBuilderRejectsBadFlagsNamingThem(t *testing.T) {
	isolateSDK(t)
	for _, tc := range []struct {
		desc    string
		cluster string
		args    []string
		want    string
	}{
		{"endpoint not a URL", testCluster, []string{"--aws-region=us-east-1", "--aws-endpoint=localhost:4566"}, "--aws-endpoint"},
		{"VPC ID malformed", testCluster, []string{"--aws-region=us-east-1", "--aws-vpc-id=default"}, "--aws-vpc-id"},
		{"chunk size zero", testCluster, []string{"--aws-region=us-east-1", "--aws-target-chunk-size=0"}, "--aws-target-chunk-size"},
		{"negative attempts", testCluster, []string{"--aws-region=us-east-1", "--aws-max-attempts=-1"}, "--aws-max-attempts"},
		{"no cluster name", "", []string{"--aws-region=us-east-1"}, "--cluster-name"},
		{"no region anywhere", testCluster, nil, "--aws-region"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := buildWith(t, tc.cluster, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestBuilderBuildsAProviderThatTalksToTheEndpoint(t *testing.T) {
	isolateSDK(t)
	e := newEnv(t)
	lb, err := buildWith(t, testCluster, "--aws-region=us-east-1", "--aws-endpoint="+e.url, "--aws-vpc-id="+testVPC, "--aws-max-attempts=5")
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if c := providers.CapabilitiesOf(lb); !c.TargetsNodePorts || c.IPMode != "Proxy" {
		t.Errorf("capabilities = %+v", c)
	}
	svc := newService("web", withPort(80, 30080, "TCP"))
	status, err := lb.EnsureLoadBalancer(e.ctx, testCluster, svc, threeNodes())
	if err != nil {
		t.Fatalf("EnsureLoadBalancer through the built provider: %v", err)
	}
	if got := e.fake.LoadBalancers(); len(got) != 1 || status.Ingress[0].Hostname != got[0].DNSName {
		t.Errorf("status %v, load balancers %v", status, got)
	}
	if name := lb.GetLoadBalancerName(e.ctx, testCluster, svc); name != e.fake.LoadBalancers()[0].Name {
		t.Errorf("GetLoadBalancerName = %q", name)
	}
	if err := lb.EnsureLoadBalancerDeleted(e.ctx, testCluster, svc); err != nil {
		t.Fatal(err)
	}
	requireNothingOfOurs(t, e, svc)
	for _, c := range e.fake.Calls() {
		if c.AccessKeyID != "AKIDBUILDER" {
			t.Errorf("%s was signed with %q, want the environment's AKIDBUILDER", c.Action, c.AccessKeyID)
		}
	}
	if logs := e.logs(); strings.Contains(logs, "builder-secret") || !strings.Contains(logs, "Created load balancer") {
		t.Errorf("the logs show the secret key, or nothing was logged:\n%s", logs)
	}
}
