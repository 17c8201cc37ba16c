package main

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDep says why a package must not be linked into the shipped
// binary, or "" when it may be.
func forbiddenDep(pkg string) string {
	const module = "github.com/extlb/extlb/"
	switch {
	case pkg == "testing" || strings.HasPrefix(pkg, "testing/"):
		return "the standard test framework"
	case pkg == "net/http/httptest":
		return "a test server"
	case strings.HasPrefix(pkg, module+"fake/"):
		return "a test double or harness (fake/)"
	case strings.HasPrefix(pkg, module+"test/"):
		return "a test package (test/)"
	case strings.HasPrefix(pkg, module+"cmd/") && pkg != module+"cmd/extlb":
		return "another command (the demo)"
	case strings.HasPrefix(pkg, module) && strings.HasSuffix(pkg, "test"):
		return "a test helper package (…test)"
	}
	return ""
}

func TestForbiddenDep(t *testing.T) {
	for _, tc := range []struct {
		desc, pkg string
		forbidden bool
	}{
		{desc: "testing", pkg: "testing", forbidden: true},
		{desc: "testing/fstest", pkg: "testing/fstest", forbidden: true},
		{desc: "httptest", pkg: "net/http/httptest", forbidden: true},
		{desc: "the local control plane", pkg: "github.com/extlb/extlb/fake/cluster", forbidden: true},
		{desc: "simulated nodes", pkg: "github.com/extlb/extlb/fake/nodeagent", forbidden: true},
		{desc: "the demo", pkg: "github.com/extlb/extlb/cmd/extlb-demo", forbidden: true},
		{desc: "the contract suite", pkg: "github.com/extlb/extlb/providers/providertest", forbidden: true},
		{desc: "fixtures", pkg: "github.com/extlb/extlb/test/fixtures", forbidden: true},
		{desc: "the fake provider", pkg: "github.com/extlb/extlb/providers/fake"},
		{desc: "the fake cloud server", pkg: "github.com/extlb/extlb/providers/fake/cloud"},
		{desc: "the command itself", pkg: "github.com/extlb/extlb/cmd/extlb"},
		{desc: "net/http", pkg: "net/http"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := forbiddenDep(tc.pkg) != ""; got != tc.forbidden {
				t.Errorf("forbiddenDep(%q) forbidden = %v, want %v", tc.pkg, got, tc.forbidden)
			}
		})
	}
}

// TestShippedBinaryLinksNoTestOrDemoCode lists what `go build ./cmd/extlb`
// links and fails on a test framework, a test harness or the demo: the
// controller image must carry only what a controller, speaker or fake
// cloud process runs.
func TestShippedBinaryLinksNoTestOrDemoCode(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/extlb/extlb/cmd/extlb").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps printed only %d packages; expected the whole dependency graph:\n%s", len(deps), out)
	}
	for _, pkg := range deps {
		if why := forbiddenDep(pkg); why != "" {
			t.Errorf("cmd/extlb links %s: %s", pkg, why)
		}
	}
}
