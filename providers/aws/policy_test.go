package aws

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"
)

// impliedActions are in the policy without a call of their own: tagging on
// create (the security-group rules' tag specifications) needs ec2:CreateTags.
var impliedActions = []string{"ec2:CreateTags"}

// TestMain runs the package's tests, then, when the whole suite ran, checks
// that docs/aws.md's IAM policy lists exactly the actions the fake AWS saw.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	// Only a whole run saw every call: -run or -skip leave some out.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" && !testing.Short() {
		if err := checkPolicy("../../docs/aws.md"); err != nil {
			fmt.Fprintln(os.Stderr, "IAM policy check:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkPolicy(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	block := regexp.MustCompile("(?s)## IAM policy.*?```json\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		return fmt.Errorf("%s has no json block under \"## IAM policy\"", path)
	}
	var policy struct {
		Statement []struct {
			Action []string
		}
	}
	if err := json.Unmarshal(block[1], &policy); err != nil {
		return fmt.Errorf("%s: the policy is not valid JSON: %w", path, err)
	}
	var documented []string
	for _, s := range policy.Statement {
		documented = append(documented, s.Action...)
	}
	seenActions.Lock()
	defer seenActions.Unlock()
	if len(seenActions.set) == 0 {
		return fmt.Errorf("no calls were recorded")
	}
	var missing, unused []string
	for a := range seenActions.set {
		if !slices.Contains(documented, a) {
			missing = append(missing, a)
		}
	}
	for _, a := range documented {
		if !seenActions.set[a] && !slices.Contains(impliedActions, a) {
			unused = append(unused, a)
		}
	}
	slices.Sort(missing)
	slices.Sort(unused)
	if len(missing)+len(unused) > 0 {
		return fmt.Errorf("%s: used but not in the policy: %v; in the policy but never used: %v", path, missing, unused)
	}
	return nil
}
