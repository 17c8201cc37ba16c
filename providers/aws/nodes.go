package aws

import (
	"regexp"
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// providerIDRE matches aws:///<zone>/<instance-id> and the older
// aws:///<instance-id> and aws://<zone>/<instance-id> forms.
var providerIDRE = regexp.MustCompile(`^aws://(?:/?[a-z0-9-]+)?/(i-[0-9a-f]{8,17})$`)

// instanceID returns the EC2 instance ID from a Node's spec.providerID.
func instanceID(providerID string) (string, bool) {
	m := providerIDRE.FindStringSubmatch(providerID)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// targetInstanceIDs returns the sorted, unique instance IDs of the nodes that
// carry every label in labels. Nodes without a valid providerID are skipped
// with a log line.
func targetInstanceIDs(logger klog.Logger, nodes []*v1.Node, labels map[string]string) []string {
	seen := map[string]bool{}
	var ids []string
nodes:
	for _, n := range nodes {
		for k, v := range labels {
			if n.Labels[k] != v {
				continue nodes
			}
		}
		id, ok := instanceID(n.Spec.ProviderID)
		if !ok {
			logger.Info("Skipping node without a valid AWS providerID", "node", n.Name, "providerID", n.Spec.ProviderID)
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}
