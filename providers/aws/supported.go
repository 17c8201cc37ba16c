package aws

import "github.com/extlb/extlb/providers"

// supported is what the aws provider does with Service annotations: every
// annotation under service.beta.kubernetes.io/aws-load-balancer- (the
// namespace of both kubernetes/cloud-provider-aws and the AWS Load
// Balancer Controller's NLB annotations) that is not implemented is
// refused, so that, say, a TLS certificate never silently becomes a
// cleartext TCP listener. `type: external` and `nlb-ip` are handed to the
// AWS Load Balancer Controller before this check (ImplementedElsewhere).
// docs/aws.md has the table.
var supported = providers.Annotations{
	Implemented: []string{
		AnnotationType, AnnotationInternal, AnnotationSubnets, AnnotationEIPAllocations, AnnotationCrossZone,
		AnnotationAdditionalTags, AnnotationTargetNodeLabels, AnnotationHCProtocol, AnnotationHCPort,
		AnnotationHCPath, AnnotationHCInterval, AnnotationHCTimeout, AnnotationHCHealthyCount, AnnotationHCUnhealthyCount,
	},
	Prefixes: []string{annotationPrefix},
	Refused: map[string]string{
		annotationPrefix + "ssl-cert":                            "TLS listeners are not implemented; the port would be plain TCP (terminate TLS in the Pods, or use the AWS Load Balancer Controller)",
		annotationPrefix + "ssl-ports":                           "TLS listeners are not implemented",
		annotationPrefix + "ssl-negotiation-policy":              "TLS listeners are not implemented",
		annotationPrefix + "alpn-policy":                         "TLS listeners are not implemented",
		annotationPrefix + "backend-protocol":                    "NLB listeners are TCP/UDP passthrough here",
		annotationPrefix + "proxy-protocol":                      "proxy protocol v2 is not implemented",
		annotationPrefix + "scheme":                              "use " + AnnotationInternal + ": \"true\" for an internal NLB (scheme is the AWS Load Balancer Controller's, with type external)",
		annotationPrefix + "nlb-target-type":                     "targets are instances (node ports); IP targets are the AWS Load Balancer Controller's (type external)",
		annotationPrefix + "security-groups":                     "security groups on the NLB are not implemented",
		annotationPrefix + "extra-security-groups":               "security groups on the NLB are not implemented",
		annotationPrefix + "manage-backend-security-group-rules": "the provider always manages the node security-group rules",
		annotationPrefix + "target-group-attributes":             "target-group attributes (preserve_client_ip, deregistration delay, stickiness) are not implemented",
		annotationPrefix + "load-balancer-attributes":            "load-balancer attributes are not implemented; use " + AnnotationCrossZone + " for cross-zone load balancing",
		annotationPrefix + "ip-address-type":                     "the NLB is IPv4; dual-stack is not implemented",
		annotationPrefix + "private-ipv4-addresses":              "fixed private addresses for internal NLBs are not implemented",
		annotationPrefix + "access-log-enabled":                  "access logs are not implemented",
		annotationPrefix + "access-log-emit-interval":            "access logs are not implemented",
		annotationPrefix + "access-log-s3-bucket-name":           "access logs are not implemented",
		annotationPrefix + "access-log-s3-bucket-prefix":         "access logs are not implemented",
		annotationPrefix + "connection-draining-enabled":         "a Classic Load Balancer setting; NLB deregistration delay is not implemented",
		annotationPrefix + "connection-draining-timeout":         "a Classic Load Balancer setting; NLB deregistration delay is not implemented",
		annotationPrefix + "connection-idle-timeout":             "a Classic Load Balancer setting",
		annotationPrefix + "healthcheck-success-codes":           "custom success codes are not implemented",
		annotationPrefix + "name":                                "load-balancer names are derived from the Service UID",
	},
}
