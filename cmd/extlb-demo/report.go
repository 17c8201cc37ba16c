package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

// Row is what the demo found for one Service: its address and, per port,
// which nodes answered the traffic sent through the load balancer.
type Row struct {
	// Service is "namespace/name".
	Service string
	// ExternalIP is status.loadBalancer.ingress[0].ip; empty when the
	// Service got none in time.
	ExternalIP string
	// EndpointNode is the node running the endpoints of an
	// externalTrafficPolicy: Local Service; empty for Cluster.
	EndpointNode string
	Ports        []PortResult
}

// Nodes returns the nodes that answered on any port, sorted.
func (r Row) Nodes() []string {
	var nodes []string
	for _, p := range r.Ports {
		for _, n := range p.Nodes() {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	slices.Sort(nodes)
	return nodes
}

// Port returns the result of port/protocol.
func (r Row) Port(port int32, protocol string) (PortResult, bool) {
	for _, p := range r.Ports {
		if p.Port == port && p.Protocol == protocol {
			return p, true
		}
	}
	return PortResult{}, false
}

// printer serialises lines written by the demo's goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

// Printf writes one formatted message.
func (p *printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// writeTable prints rows as a table, one line per Service port.
func (p *printer) writeTable(rows []Row) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tEXTERNAL-IP\tPORTS\tNODES THAT ANSWERED")
	for _, r := range rows {
		ip := r.ExternalIP
		if ip == "" {
			ip = "<pending>"
		}
		if len(r.Ports) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t\t\n", r.Service, ip)
		}
		for i, port := range r.Ports {
			name, addr := r.Service, ip
			if i > 0 {
				name, addr = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%s\t%s\n", name, addr, port.Port, port.Protocol, describeAnswers(r, port))
		}
	}
	_ = tw.Flush()
}

// describeAnswers is "node-1 ×2, node-2 ×2, node-3 ×2 (6/6)", plus the
// endpoint node of a Local Service and the last error of failures.
func describeAnswers(r Row, p PortResult) string {
	var parts []string
	for _, n := range p.Nodes() {
		parts = append(parts, fmt.Sprintf("%s ×%d", n, p.Answers[n]))
	}
	s := "none"
	if len(parts) > 0 {
		s = strings.Join(parts, ", ")
	}
	s += fmt.Sprintf(" (%d/%d answered)", p.Sent-p.Failed, p.Sent)
	if r.EndpointNode != "" {
		s += "; Local: endpoint on " + r.EndpointNode
	}
	if p.Failed > 0 && p.LastError != "" {
		s += "; last error: " + p.LastError
	}
	return s
}

// reporter probes every LoadBalancer Service once it has an address (and
// again when its address or ports change) and sends the result on rows.
type reporter struct {
	lister corelisters.ServiceLister
	fleet  *fleet
	probe  ProbeOptions
	rows   chan Row

	mu sync.Mutex
	// probed maps a Service key to the signature of what was probed.
	probed map[string]string
	wg     sync.WaitGroup
}

func newReporter(lister corelisters.ServiceLister, f *fleet, probe ProbeOptions) *reporter {
	return &reporter{lister: lister, fleet: f, probe: probe, rows: make(chan Row), probed: map[string]string{}}
}

// loop scans the Services each time trigger fires until ctx ends, then
// waits for the probes in flight.
func (r *reporter) loop(ctx context.Context, trigger <-chan struct{}) {
	defer r.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		}
		r.scan(ctx)
	}
}

// scan starts a probe for each Service with a new address or new ports.
func (r *reporter) scan(ctx context.Context) {
	svcs, err := r.lister.List(labels.Everything())
	if err != nil {
		klog.FromContext(ctx).Error(err, "Listing Services")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	present := map[string]bool{}
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		present[key] = true
		ip := ingressIP(svc)
		if svc.Spec.Type != v1.ServiceTypeLoadBalancer || !ip.IsValid() {
			continue
		}
		sig := signature(svc, ip)
		if r.probed[key] == sig {
			continue
		}
		r.probed[key] = sig
		svc := svc.DeepCopy()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			row := r.probeService(ctx, svc, ip)
			select {
			case r.rows <- row:
			case <-ctx.Done():
			}
		}()
	}
	for key := range r.probed {
		if !present[key] {
			delete(r.probed, key)
		}
	}
}

// probeService sends traffic through every port of svc's load balancer.
func (r *reporter) probeService(ctx context.Context, svc *v1.Service, ip netip.Addr) Row {
	key := svc.Namespace + "/" + svc.Name
	row := Row{Service: key, ExternalIP: ip.String()}
	if isLocal(svc) {
		row.EndpointNode = r.fleet.endpointNode(key)
	}
	results := make([]PortResult, len(svc.Spec.Ports))
	var wg sync.WaitGroup
	for i, p := range svc.Spec.Ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probePort(ctx, ip, p.Port, string(p.Protocol), r.probe)
		}()
	}
	wg.Wait()
	row.Ports = results
	return row
}

// ingressIP is the Service's first ingress IP, or the zero Addr.
func ingressIP(svc *v1.Service) netip.Addr {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			return ip
		}
	}
	return netip.Addr{}
}

// signature identifies what a probe of svc would test.
func signature(svc *v1.Service, ip netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s", svc.UID, ip, svc.Spec.ExternalTrafficPolicy)
	for _, p := range svc.Spec.Ports {
		fmt.Fprintf(&b, "|%d/%s>%d", p.Port, p.Protocol, p.NodePort)
	}
	return b.String()
}
