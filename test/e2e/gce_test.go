package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	fakegce "github.com/extlb/extlb/fake/gce"
	"github.com/extlb/extlb/providers"
	gceprovider "github.com/extlb/extlb/providers/gce"
)

// The fake GCE project of the e2e: three node instances with network tags
// in two zones of one region.
const (
	gceProject     = "extlb-e2e"
	gceRegion      = "us-central1"
	gceCluster     = "e2e-gce"
	gceNodeTag     = "e2e-node"
	gceSourceRange = "198.51.100.0/24"
	gceLinkPrefix  = "https://www.googleapis.com/compute/v1/projects/" + gceProject + "/"
)

// gceNodes are the instances, by Node name, as zone/name.
var gceNodes = map[string]string{"node-1": "us-central1-a/node-1", "node-2": "us-central1-b/node-2", "node-3": "us-central1-a/node-3"}

func newFakeGCE(t *testing.T) (*fakegce.Server, string) {
	fake := fakegce.New(gceProject)
	for _, name := range sortedKeys(gceNodes) {
		zone, instance, _ := strings.Cut(gceNodes[name], "/")
		fake.AddInstance(zone, instance, gceNodeTag, "http-server")
	}
	srv := fake.Start()
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// TestGCEProviderEndToEnd runs the controller with --provider=gce against
// the fake GCE, through the real API server under the controller's
// ServiceAccount: create, a new Node, a port change, an invalid annotation,
// a create through 503s, a 429 and a failed operation, and deletion without
// leaks.
func TestGCEProviderEndToEnd(t *testing.T) {
	fake, url := newFakeGCE(t)
	e := newCloudE2E(t, gceCluster)
	e.addNode("node-1", "10.128.0.11", "gce://"+gceProject+"/"+gceNodes["node-1"])
	e.addNode("node-2", "10.128.0.12", "gce://"+gceProject+"/"+gceNodes["node-2"])
	lb := e.buildProvider(gceprovider.NewBuilder(), "--gce-project="+gceProject, "--gce-region="+gceRegion, "--gce-endpoint="+url,
		"--gce-http-retries=3", "--gce-http-retry-wait-min=20ms", "--gce-http-retry-wait-max=200ms")
	e.run(lb)

	// Create: address, firewall, shared health check and its firewall,
	// target pool of both instances, one TCP forwarding rule.
	web := e.service("web", nil, tcpServicePort("http", 80), tcpServicePort("https", 443))
	web.Spec.LoadBalancerSourceRanges = []string{gceSourceRange}
	web.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	createService(t, e.admin, web)
	gceWaitConverged(e, fake, lb, "web", "node-1", "node-2")
	e.waitEvent("web", "Normal EnsuredLoadBalancer", 10*time.Second)

	// A new Node joins the target pool.
	e.addNode("node-3", "10.128.0.13", "gce://"+gceProject+"/"+gceNodes["node-3"])
	gceWaitConverged(e, fake, lb, "web", "node-1", "node-2", "node-3")

	// A port change: the firewall and the forwarding rule's range follow.
	updateService(t, e.admin, e.ns, "web", func(s *v1.Service) { s.Spec.Ports[1] = tcpServicePort("https-alt", 8443) })
	gceWaitConverged(e, fake, lb, "web", "node-1", "node-2", "node-3")

	// An invalid annotation: an Event naming it, and no write to GCE.
	before := fake.Keys()
	fake.ResetCalls()
	createService(t, e.admin, e.service("bad", map[string]string{gceprovider.AnnotationLoadBalancerIP: "not-an-ip"}, tcpServicePort("http", 80)))
	e.waitEvent("bad", `Warning SyncLoadBalancerFailed: Error syncing load balancer: metadata.annotations[gce.extlb.io/load-balancer-ip]: "not-an-ip" is not an IPv4 address`, 20*time.Second)
	time.Sleep(500 * time.Millisecond) // let a wrongly retried sync show up
	for _, c := range fake.Calls() {
		if c.Write {
			t.Errorf("write to GCE for an invalid Service: %s %s", c.Method, c.Path)
		}
	}
	if after := fake.Keys(); !slices.Equal(before, after) {
		t.Errorf("resources changed for an invalid Service: %v, then %v", before, after)
	}
	if st := e.get("bad").Status.LoadBalancer; len(st.Ingress) != 0 {
		t.Errorf("the invalid Service got a status: %+v", st)
	}

	// Faults during a create: two 503s on the target pool insert and a 429
	// with Retry-After on the forwarding rule insert, which the HTTP layer
	// retries, and an address operation that ends in an error, which fails
	// the Ensure so that the controller retries it.
	fake.ResetCalls()
	fake.InjectFault(fakegce.Fault{Method: http.MethodPost, PathContains: "/targetPools", Status: http.StatusServiceUnavailable, Times: 2})
	fake.InjectFault(fakegce.Fault{Method: http.MethodPost, PathContains: "/forwardingRules", Status: http.StatusTooManyRequests, RetryAfter: "1", Times: 1})
	fake.InjectFault(fakegce.Fault{Method: http.MethodPost, PathContains: "/addresses", Status: http.StatusInternalServerError, InOperation: true, Times: 1})
	createService(t, e.admin, e.service("flaky", nil, tcpServicePort("dns", 53)))
	gceWaitConverged(e, fake, lb, "flaky", "node-1", "node-2", "node-3")
	statuses := map[string]int{}
	for _, c := range fake.Calls() {
		if c.Status >= 400 && c.Status != http.StatusNotFound { // 404s are the provider's look-ups of what does not exist yet
			statuses[fmt.Sprintf("%s %d", c.Method, c.Status)+" "+collectionOf(c.Path)]++
		}
	}
	if want := map[string]int{"POST 503 targetPools": 2, "POST 429 forwardingRules": 1}; !maps.Equal(statuses, want) {
		t.Errorf("failed calls = %v, want %v (each fault hit once per Times)", statuses, want)
	}
	e.waitEvent("flaky", "Warning SyncLoadBalancerFailed: Error syncing load balancer: ", 5*time.Second, "operation on address", "INTERNALERROR (500)")
	fake.ClearFaults()

	// Delete: every resource goes, the shared health check with the last
	// Service that uses it, then the Services do.
	for _, name := range []string{"web", "flaky", "bad"} {
		e.deleteService(name, 30*time.Second)
	}
	if keys := fake.Keys(); len(keys) != 0 {
		t.Errorf("left in GCE after every Service was deleted: %v", keys)
	}
}

// collectionOf returns the collection of a path below the project
// ("regions/r/targetPools/n" -> "targetPools").
func collectionOf(path string) string {
	parts := strings.Split(path, "/")
	if len(parts) >= 3 && (parts[0] == "regions" || parts[0] == "zones") {
		return parts[2]
	}
	if len(parts) >= 2 {
		return parts[1]
	}
	return path
}

// gceClusterPrefix is the documented name prefix of the cluster's
// resources: "k8s-" and 8 hex digits of the SHA-256 of the cluster name.
func gceClusterPrefix() string {
	sum := sha256.Sum256([]byte(gceCluster))
	return "k8s-" + hex.EncodeToString(sum[:4])
}

// gceWaitConverged waits until the fake holds the Service's load balancer
// as it stands in the API server, with the nodes' instances in its pool,
// and the Service's status shows its address.
func gceWaitConverged(e *cloudE2E, fake *fakegce.Server, lb providers.LoadBalancer, name string, nodes ...string) {
	e.t.Helper()
	var instances []string
	for _, n := range nodes {
		zone, instance, _ := strings.Cut(gceNodes[n], "/")
		instances = append(instances, gceLinkPrefix+"zones/"+zone+"/instances/"+instance)
	}
	slices.Sort(instances)
	e.waitMatch(40*time.Second, "GCE load balancer of "+name+" matches the Service", name, func(svc *v1.Service) string {
		return gceMismatch(fake, lb.GetLoadBalancerName(e.t.Context(), gceCluster, svc), svc, instances)
	})
}

// gceMismatch says how the Service's resources differ from what its spec
// and the node instances call for, or "" when they match.
func gceMismatch(fake *fakegce.Server, base string, svc *v1.Service, instances []string) string {
	prefix := gceClusterPrefix()
	if !strings.HasPrefix(base, prefix+"-") {
		return fmt.Sprintf("load balancer name %q does not start with the cluster's prefix %s", base, prefix)
	}
	ingress := svc.Status.LoadBalancer.Ingress
	if len(ingress) != 1 || ingress[0].IP == "" || ingress[0].Hostname != "" ||
		ingress[0].IPMode == nil || *ingress[0].IPMode != v1.LoadBalancerIPModeVIP {
		return fmt.Sprintf("status %+v, want one IP with ipMode VIP", svc.Status.LoadBalancer)
	}
	ip := ingress[0].IP
	if !hasFinalizer(svc) {
		return "no finalizer"
	}
	owner := fmt.Sprintf(`"kubernetes.io/service-name":"%s/%s"`, svc.Namespace, svc.Name)

	// Exactly these resources of the Service, and the shared two.
	wantKeys := []string{
		"global/firewalls/" + base + "-fw",
		"regions/" + gceRegion + "/addresses/" + base,
		"regions/" + gceRegion + "/forwardingRules/" + base + "-tcp",
		"regions/" + gceRegion + "/targetPools/" + base,
	}
	var haveKeys []string
	for _, k := range fake.Keys() {
		if strings.Contains(k, base) {
			haveKeys = append(haveKeys, k)
		}
	}
	slices.Sort(wantKeys)
	if !slices.Equal(haveKeys, wantKeys) {
		return fmt.Sprintf("resources %v, want %v", haveKeys, wantKeys)
	}

	addr, _ := fake.Address(gceRegion, base)
	if addr.GetAddress() != ip || !strings.Contains(addr.GetDescription(), owner) {
		return fmt.Sprintf("address %s is %s (%s), want the status IP %s, owned", base, addr.GetAddress(), addr.GetDescription(), ip)
	}

	var ports []string
	low, high := int32(65535), int32(0)
	for _, p := range svc.Spec.Ports {
		ports = append(ports, strconv.Itoa(int(p.Port)))
		low, high = min(low, p.Port), max(high, p.Port)
	}
	slices.Sort(ports)
	sources := svc.Spec.LoadBalancerSourceRanges
	if len(sources) == 0 {
		sources = []string{"0.0.0.0/0"}
	}
	fw, _ := fake.Firewall(base + "-fw")
	allowed := fw.GetAllowed()
	if len(allowed) != 1 || allowed[0].GetIPProtocol() != "tcp" || !slices.Equal(sortedCopy(allowed[0].GetPorts(), strings.Compare), ports) ||
		!slices.Equal(fw.GetSourceRanges(), sources) || !slices.Equal(fw.GetTargetTags(), []string{gceNodeTag}) ||
		fw.GetNetwork() != gceLinkPrefix+"global/networks/default" || !strings.Contains(fw.GetDescription(), owner) {
		return fmt.Sprintf("firewall %s allows %v from %v to %v on %s (%s), want tcp %v from %v to [%s] on default, owned",
			fw.GetName(), allowed, fw.GetSourceRanges(), fw.GetTargetTags(), fw.GetNetwork(), fw.GetDescription(), ports, sources, gceNodeTag)
	}

	hc, ok := fake.HealthCheck(prefix + "-node-hc")
	if !ok || hc.Port != 10256 || hc.RequestPath != "/healthz" {
		return fmt.Sprintf("shared health check %s-node-hc: %+v, want kube-proxy's :10256/healthz", prefix, hc)
	}
	hcfw, ok := fake.Firewall(prefix + "-node-hc-fw")
	if !ok || len(hcfw.GetAllowed()) != 1 || !slices.Equal(hcfw.GetAllowed()[0].GetPorts(), []string{"10256"}) || !slices.Equal(hcfw.GetTargetTags(), []string{gceNodeTag}) {
		return fmt.Sprintf("shared health check firewall %s-node-hc-fw: %v", prefix, hcfw)
	}

	pool, _ := fake.TargetPool(gceRegion, base)
	affinity := "NONE"
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		affinity = "CLIENT_IP"
	}
	if !slices.Equal(sortedCopy(pool.GetInstances(), strings.Compare), instances) ||
		!slices.Equal(pool.GetHealthChecks(), []string{gceLinkPrefix + "global/httpHealthChecks/" + prefix + "-node-hc"}) ||
		pool.GetSessionAffinity() != affinity || !strings.Contains(pool.GetDescription(), owner) {
		return fmt.Sprintf("target pool %s: instances %v, health checks %v, affinity %s, description %s; want instances %v, the shared health check, %s, owned",
			base, pool.GetInstances(), pool.GetHealthChecks(), pool.GetSessionAffinity(), pool.GetDescription(), instances, affinity)
	}

	rule, _ := fake.ForwardingRule(gceRegion, base+"-tcp")
	wantRange := fmt.Sprintf("%d-%d", low, high)
	if rule.GetIPAddress() != ip || rule.GetIPProtocol() != "TCP" || rule.GetPortRange() != wantRange ||
		rule.GetTarget() != gceLinkPrefix+"regions/"+gceRegion+"/targetPools/"+base || !strings.Contains(rule.GetDescription(), owner) {
		return fmt.Sprintf("forwarding rule %s: %s %s %s -> %s (%s), want %s TCP %s -> the target pool, owned",
			base+"-tcp", rule.GetIPAddress(), rule.GetIPProtocol(), rule.GetPortRange(), rule.GetTarget(), rule.GetDescription(), ip, wantRange)
	}
	return ""
}
