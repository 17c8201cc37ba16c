package main

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// The klog configuration is process-wide; every command applies it.
	gate := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(gate); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logsapi.ResetForTest(gate) })
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestControllerHelpListsEveryFlagWithItsDefault(t *testing.T) {
	out, err := run(t, "controller", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--provider string", `(default "fake")`,
		"--load-balancer-class", "--default-class", "(default true)",
		"--workers int", "(default 16)",
		"--node-port-range portRange", "(default 30000-32767)",
		"--allocate-node-ports",
		"--kube-api-qps float32", "(default 100)",
		"--leader-elect", "--leader-elect-lease-duration duration", "(default 15s)",
		"--metrics-bind-address string", `(default ":10260")`,
		"--kubeconfig string",
		"--logging-format string",
		"--aws-region", "--gce-project", "--fake-endpoint", "--metal-retry-interval",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("controller --help lacks %q", want)
		}
	}
}

func TestBadFlagsGiveClearErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{desc: "unknown provider names the known ones", args: []string{"controller", "--provider=azure"}, want: `unknown provider "azure": known providers are aws, fake, gce, metal`},
		{desc: "zero workers", args: []string{"controller", "--workers=0"}, want: "--workers: must be at least 1"},
		{desc: "bad node-port range", args: []string{"controller", "--node-port-range=40000-30000"}, want: `invalid argument "40000-30000" for "--node-port-range"`},
		{desc: "unknown flag", args: []string{"controller", "--no-such-flag"}, want: "unknown flag: --no-such-flag"},
		{desc: "bad log format", args: []string{"controller", "--logging-format=xml"}, want: "logging flags"},
		{desc: "speaker without a node name", args: []string{"speaker", "--kubeconfig=testdata/kubeconfig"}, want: "--node-name: required"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if !strings.Contains(err.Error()+out, tc.want) {
				t.Errorf("error %q (output %q) does not contain %q", err, out, tc.want)
			}
		})
	}
}

// TestControllerAndSpeakerAgreeOnClassDefaults: with default flags a metal
// controller and the speakers select the same Services (before, the
// controller served Services without a class and no speaker announced
// them).
func TestControllerAndSpeakerAgreeOnClassDefaults(t *testing.T) {
	ctrl := newControllerCommand(defaultRegistry()).Flags()
	spk := newSpeakerCommand().Flags()
	if c, s := ctrl.Lookup("default-class").DefValue, spk.Lookup("default-class").DefValue; c != s {
		t.Errorf("--default-class defaults to %s for the controller and %s for the speaker", c, s)
	}
	if got, want := spk.Lookup("load-balancer-class").DefValue, providers.DefaultClass(metal.Name); got != want {
		t.Errorf("speaker --load-balancer-class defaults to %q, want the metal controller's %q", got, want)
	}
}
