package gce

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Ownership keys recorded, as JSON, in the description of every resource the
// provider creates. A resource whose description does not carry this
// cluster (and, for per-Service resources, this Service) is not ours: it is
// never changed or deleted.
const (
	ownerClusterKey = "kubernetes.io/cluster"
	ownerServiceKey = "kubernetes.io/service-name"
)

// resourceNames are the GCE names of one Service's load balancer. They are
// derived from the cluster name and the Service UID only, so they are stable
// across renames and restarts, and at most 51 characters (GCE allows 63,
// matching [a-z]([-a-z0-9]*[a-z0-9])?).
type resourceNames struct {
	// base names the address and the target pool.
	base string
	// firewall allows the Service ports from the source ranges.
	firewall string
	// healthCheck and healthCheckFirewall are the per-Service health check
	// (externalTrafficPolicy: Local) and the rule admitting Google's probes.
	healthCheck         string
	healthCheckFirewall string
	// sharedHealthCheck and sharedHealthCheckFirewall are the cluster-wide
	// kube-proxy health check used by every externalTrafficPolicy: Cluster
	// Service, and its probe rule.
	sharedHealthCheck         string
	sharedHealthCheckFirewall string
}

// clusterPrefix is "k8s-" and 8 hex characters of the cluster name's hash.
func clusterPrefix(cluster string) string {
	sum := sha256.Sum256([]byte(cluster))
	return "k8s-" + hex.EncodeToString(sum[:4])
}

func namesFor(cluster string, uid string) resourceNames {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return -1
	}, uid)
	if len(id) > 32 {
		// Not a standard UID (32 hex digits and dashes): hash it whole so
		// that long IDs differing at the end stay distinct.
		sum := sha256.Sum256([]byte(uid))
		id = hex.EncodeToString(sum[:16])
	}
	prefix := clusterPrefix(cluster)
	base := prefix + "-" + id
	return resourceNames{
		base:                      base,
		firewall:                  base + "-fw",
		healthCheck:               base + "-hc",
		healthCheckFirewall:       base + "-hc-fw",
		sharedHealthCheck:         prefix + "-node-hc",
		sharedHealthCheckFirewall: prefix + "-node-hc-fw",
	}
}

// rule is the forwarding rule for one protocol ("tcp", "udp").
func (n resourceNames) rule(protocol v1.Protocol) string {
	return n.base + "-" + strings.ToLower(string(protocol))
}

// owner is what a resource's description says about who created it.
type owner struct {
	Cluster string `json:"kubernetes.io/cluster"`
	Service string `json:"kubernetes.io/service-name,omitempty"`
}

// description renders the ownership record.
func (o owner) description() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// owns reports whether a description records exactly this owner.
func (o owner) owns(description string) bool {
	var got owner
	if err := json.Unmarshal([]byte(description), &got); err != nil {
		return false
	}
	return got == o
}
