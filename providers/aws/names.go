package aws

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Tag keys that mark what the provider owns.
const (
	// clusterTagPrefix + cluster name, with the value "owned", marks a
	// resource of that cluster (the key the in-tree provider uses).
	clusterTagPrefix = "kubernetes.io/cluster/"
	// serviceTagKey holds "namespace/name" of the Service a resource serves.
	serviceTagKey = "kubernetes.io/service-name"
	ownedValue    = "owned"
)

// owner identifies one Service of one cluster: what we tag and look for.
type owner struct {
	cluster string
	service string // namespace/name
	uid     string
}

func ownerOf(cluster string, svc *v1.Service) owner {
	return owner{cluster: cluster, service: svc.Namespace + "/" + svc.Name, uid: string(svc.UID)}
}

func (o owner) clusterTag() string { return clusterTagPrefix + o.cluster }

// tags are the ownership tags every resource gets.
func (o owner) tags() map[string]string {
	return map[string]string{o.clusterTag(): ownedValue, serviceTagKey: o.service}
}

// owns reports whether tags mark a resource as this owner's.
func (o owner) owns(tags map[string]string) bool {
	return tags[o.clusterTag()] == ownedValue && tags[serviceTagKey] == o.service
}

// ruleDescription is the description of our security-group rules: it names
// the cluster and the Service so that a human can tell them apart.
func (o owner) ruleDescription(purpose string) string {
	return fmt.Sprintf("extlb cluster=%s service=%s %s", o.cluster, o.service, purpose)
}

// hashName returns "k8s-" followed by 28 hex digits of the hash of parts:
// 32 characters, the most AWS allows for load balancer and target group names.
func hashName(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "k8s-" + hex.EncodeToString(sum[:])[:28]
}

// loadBalancerName is the deterministic NLB name of a Service.
func (o owner) loadBalancerName() string { return hashName("lb", o.cluster, o.uid) }

// targetGroupName is the deterministic name of the target group for one
// listener; it changes when the node port or protocol changes, because a
// target group's port and protocol cannot be modified.
func (o owner) targetGroupName(l listenerSpec) string {
	return hashName("tg", o.cluster, o.uid, l.protocol, fmt.Sprint(l.port), fmt.Sprint(l.nodePort))
}
