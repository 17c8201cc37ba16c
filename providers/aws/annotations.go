package aws

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"github.com/extlb/extlb/providers"
)

// The annotations, with the names the in-tree AWS provider uses.
const (
	annotationPrefix            = "service.beta.kubernetes.io/aws-load-balancer-"
	AnnotationType              = annotationPrefix + "type"
	AnnotationInternal          = annotationPrefix + "internal"
	AnnotationSubnets           = annotationPrefix + "subnets"
	AnnotationEIPAllocations    = annotationPrefix + "eip-allocations"
	AnnotationCrossZone         = annotationPrefix + "cross-zone-load-balancing-enabled"
	AnnotationAdditionalTags    = annotationPrefix + "additional-resource-tags"
	AnnotationTargetNodeLabels  = annotationPrefix + "target-node-labels"
	AnnotationHCProtocol        = annotationPrefix + "healthcheck-protocol"
	AnnotationHCPort            = annotationPrefix + "healthcheck-port"
	AnnotationHCPath            = annotationPrefix + "healthcheck-path"
	AnnotationHCInterval        = annotationPrefix + "healthcheck-interval"
	AnnotationHCTimeout         = annotationPrefix + "healthcheck-timeout"
	AnnotationHCHealthyCount    = annotationPrefix + "healthcheck-healthy-threshold"
	AnnotationHCUnhealthyCount  = annotationPrefix + "healthcheck-unhealthy-threshold"
	trafficPort                 = "traffic-port"
	defaultHealthCheckInterval  = 10
	defaultHealthCheckTimeout   = 6
	defaultHealthCheckThreshold = 2
)

// serviceSpec is everything the provider builds from one Service, validated.
type serviceSpec struct {
	internal         bool
	subnets          []string // IDs (subnet-...) or Name tags, as annotated
	eipAllocations   []string
	crossZone        bool
	extraTags        map[string]string
	targetNodeLabels map[string]string
	healthCheck      healthCheck
	sourceRanges     []string // IPv4 CIDRs
	listeners        []listenerSpec
}

// listenerSpec is one NLB listener and its target group.
type listenerSpec struct {
	port     int32
	nodePort int32
	protocol string // TCP, UDP or TCP_UDP
}

// healthCheck is a target group's health check.
type healthCheck struct {
	protocol  string // TCP, HTTP or HTTPS
	port      string // "traffic-port" or a number
	path      string // "" for TCP
	interval  int32
	timeout   int32
	healthy   int32
	unhealthy int32
}

func annotationField(name string) string { return "metadata.annotations[" + name + "]" }

// parseService validates svc and returns its spec, an InputError naming the
// field at fault, or cloudprovider.ImplementedElsewhere when the Service asks
// for a load balancer that another controller manages.
func parseService(svc *v1.Service) (*serviceSpec, error) {
	a := svc.Annotations
	switch t := a[AnnotationType]; t {
	case "", "nlb":
	case "external", "nlb-ip":
		return nil, cloudprovider.ImplementedElsewhere
	default:
		return nil, providers.NewInputError(annotationField(AnnotationType), "%q is not supported: use \"nlb\"", t)
	}
	if err := supported.Check(svc); err != nil {
		return nil, err
	}
	spec := &serviceSpec{}
	var err error
	if spec.internal, err = boolAnnotation(a, AnnotationInternal); err != nil {
		return nil, err
	}
	if spec.crossZone, err = boolAnnotation(a, AnnotationCrossZone); err != nil {
		return nil, err
	}
	spec.subnets = listAnnotation(a, AnnotationSubnets)
	spec.eipAllocations = listAnnotation(a, AnnotationEIPAllocations)
	for _, id := range spec.eipAllocations {
		if !strings.HasPrefix(id, "eipalloc-") {
			return nil, providers.NewInputError(annotationField(AnnotationEIPAllocations), "%q is not an Elastic IP allocation ID (eipalloc-...)", id)
		}
	}
	if len(spec.eipAllocations) > 0 {
		if spec.internal {
			return nil, providers.NewInputError(annotationField(AnnotationEIPAllocations), "Elastic IPs need an internet-facing load balancer, but %s is true", AnnotationInternal)
		}
		if len(spec.subnets) > 0 && len(spec.subnets) != len(spec.eipAllocations) {
			return nil, providers.NewInputError(annotationField(AnnotationEIPAllocations), "%d allocations for %d subnets: give one per subnet", len(spec.eipAllocations), len(spec.subnets))
		}
	}
	if spec.extraTags, err = mapAnnotation(a, AnnotationAdditionalTags); err != nil {
		return nil, err
	}
	for k, v := range spec.extraTags {
		if len(k) > 128 || len(v) > 256 || strings.HasPrefix(k, "aws:") || k == serviceTagKey || strings.HasPrefix(k, clusterTagPrefix) {
			return nil, providers.NewInputError(annotationField(AnnotationAdditionalTags), "tag %q is reserved or too long (keys up to 128, values up to 256 characters)", k)
		}
	}
	if spec.targetNodeLabels, err = mapAnnotation(a, AnnotationTargetNodeLabels); err != nil {
		return nil, err
	}
	if svc.Spec.LoadBalancerIP != "" {
		return nil, providers.NewInputError("spec.loadBalancerIP", "an NLB cannot take a requested IP: use the %s annotation", AnnotationEIPAllocations)
	}
	if spec.listeners, err = parsePorts(svc.Spec.Ports); err != nil {
		return nil, err
	}
	if spec.sourceRanges, err = parseSourceRanges(svc); err != nil {
		return nil, err
	}
	if spec.healthCheck, err = parseHealthCheck(svc); err != nil {
		return nil, err
	}
	return spec, nil
}

func boolAnnotation(a map[string]string, name string) (bool, error) {
	v, ok := a[name]
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, providers.NewInputError(annotationField(name), "%q is not a boolean (true or false)", v)
	}
	return b, nil
}

func listAnnotation(a map[string]string, name string) []string {
	var out []string
	for _, item := range strings.Split(a[name], ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// mapAnnotation parses "k1=v1,k2=v2".
func mapAnnotation(a map[string]string, name string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range listAnnotation(a, name) {
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, providers.NewInputError(annotationField(name), "%q is not of the form key=value", item)
		}
		out[k] = v
	}
	return out, nil
}

func int32Annotation(a map[string]string, name string, def, min, max int32) (int32, error) {
	v, ok := a[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || int32(n) < min || int32(n) > max {
		return 0, providers.NewInputError(annotationField(name), "%q is not an integer from %d to %d", v, min, max)
	}
	return int32(n), nil
}

// parsePorts turns Service ports into listeners: one per port number, TCP,
// UDP, or TCP_UDP when a port number is served over both.
func parsePorts(ports []v1.ServicePort) ([]listenerSpec, error) {
	byPort := map[int32]int{}
	var out []listenerSpec
	for i, p := range ports {
		if p.Protocol != v1.ProtocolTCP && p.Protocol != v1.ProtocolUDP && p.Protocol != "" {
			return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].protocol", i), "%s is not supported by a network load balancer (TCP and UDP are)", p.Protocol)
		}
		if p.NodePort == 0 {
			return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].nodePort", i), "no node port is allocated")
		}
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		if j, ok := byPort[p.Port]; ok {
			if out[j].nodePort != p.NodePort {
				return nil, providers.NewInputError(fmt.Sprintf("spec.ports[%d].nodePort", i), "port %d is served over TCP and UDP, which one NLB listener (TCP_UDP) can only do with the same nodePort for both (%d != %d)", p.Port, p.NodePort, out[j].nodePort)
			}
			out[j].protocol = "TCP_UDP"
			continue
		}
		byPort[p.Port] = len(out)
		out = append(out, listenerSpec{port: p.Port, nodePort: p.NodePort, protocol: proto})
	}
	if len(out) == 0 {
		return nil, providers.NewInputError("spec.ports", "a load balancer needs at least one port")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out, nil
}

// parseSourceRanges returns the Service's source ranges as IPv4 CIDRs
// (0.0.0.0/0 when it sets none).
func parseSourceRanges(svc *v1.Service) ([]string, error) {
	ranges, err := providers.SourceRanges(svc)
	if err != nil {
		return nil, err
	}
	if len(ranges) == 0 {
		return []string{"0.0.0.0/0"}, nil
	}
	out := make([]string, 0, len(ranges))
	for _, r := range ranges {
		if !r.Prefix.Addr().Is4() {
			return nil, providers.NewInputError(r.Field, "%s: the NLB is IPv4, so source ranges must be IPv4", r.Prefix)
		}
		out = append(out, r.Prefix.String())
	}
	sort.Strings(out)
	return out, nil
}

// parseHealthCheck returns the health check for the traffic policy (TCP on
// the traffic port for Cluster, HTTP /healthz on healthCheckNodePort for
// Local) with the annotations' overrides applied.
func parseHealthCheck(svc *v1.Service) (healthCheck, error) {
	hc := healthCheck{protocol: "TCP", port: trafficPort}
	if servicehelpers.RequestsOnlyLocalTraffic(svc) {
		path, port := servicehelpers.GetServiceHealthCheckPathPort(svc)
		if port == 0 {
			return hc, providers.NewInputError("spec.healthCheckNodePort", "externalTrafficPolicy is Local but no health check node port is allocated")
		}
		hc = healthCheck{protocol: "HTTP", port: strconv.Itoa(int(port)), path: path}
	}
	a := svc.Annotations
	if v, ok := a[AnnotationHCProtocol]; ok {
		switch p := strings.ToUpper(v); p {
		case "TCP":
			hc.protocol, hc.path = p, ""
		case "HTTP", "HTTPS":
			if hc.protocol == "TCP" {
				hc.path = "/"
			}
			hc.protocol = p
		default:
			return hc, providers.NewInputError(annotationField(AnnotationHCProtocol), "%q is not TCP, HTTP or HTTPS", v)
		}
	}
	if v, ok := a[AnnotationHCPort]; ok {
		if n, err := strconv.Atoi(v); v != trafficPort && (err != nil || n < 1 || n > 65535) {
			return hc, providers.NewInputError(annotationField(AnnotationHCPort), "%q is not %q or a port from 1 to 65535", v, trafficPort)
		}
		hc.port = v
	}
	if v, ok := a[AnnotationHCPath]; ok {
		if hc.protocol == "TCP" {
			return hc, providers.NewInputError(annotationField(AnnotationHCPath), "a path needs the HTTP or HTTPS health check protocol (%s)", AnnotationHCProtocol)
		}
		if !strings.HasPrefix(v, "/") || len(v) > 1024 {
			return hc, providers.NewInputError(annotationField(AnnotationHCPath), "%q is not an absolute path of up to 1024 characters", v)
		}
		hc.path = v
	}
	var err error
	if hc.interval, err = int32Annotation(a, AnnotationHCInterval, defaultHealthCheckInterval, 5, 300); err != nil {
		return hc, err
	}
	if hc.timeout, err = int32Annotation(a, AnnotationHCTimeout, min(defaultHealthCheckTimeout, hc.interval-1), 2, 120); err != nil {
		return hc, err
	}
	if hc.timeout >= hc.interval {
		return hc, providers.NewInputError(annotationField(AnnotationHCTimeout), "the timeout (%ds) must be shorter than the interval (%ds)", hc.timeout, hc.interval)
	}
	if hc.healthy, err = int32Annotation(a, AnnotationHCHealthyCount, defaultHealthCheckThreshold, 2, 10); err != nil {
		return hc, err
	}
	if hc.unhealthy, err = int32Annotation(a, AnnotationHCUnhealthyCount, defaultHealthCheckThreshold, 2, 10); err != nil {
		return hc, err
	}
	return hc, nil
}
