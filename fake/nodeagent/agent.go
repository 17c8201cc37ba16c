// Package nodeagent simulates a node's kube-proxy for demos and tests: on
// the node's address it serves each Service's node ports and health-check
// node port.
//
//   - TCP node ports answer every connection with one line naming the node
//     ("node-a\n") and then echo what they receive, half-close included, so
//     a client sees which node answered and can push bulk bytes.
//   - UDP node ports answer every datagram with the node name, a newline and
//     the datagram's payload.
//   - A healthCheckNodePort serves GET /healthz like kube-proxy: 200 when the
//     node has a local endpoint for the Service, 503 otherwise, with a JSON
//     body counting the local endpoints.
package nodeagent

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Protocols of a node port.
const (
	TCP = "TCP"
	UDP = "UDP"
)

// Port is one node port of a Service.
type Port struct {
	Protocol string
	NodePort int
}

// ServicePorts is what the agent serves for one Service.
type ServicePorts struct {
	// Name is "namespace/name".
	Name string
	// Ports are the Service's node ports.
	Ports []Port
	// HealthCheckNodePort is served when not zero (externalTrafficPolicy:
	// Local).
	HealthCheckNodePort int
}

type listenerKey struct {
	protocol string // TCP, UDP or "health"
	port     int
}

type listener interface{ close() }

// Agent is one simulated node.
type Agent struct {
	name string
	ip   netip.Addr

	// mu serialises SetServices and Close.
	mu        sync.Mutex
	listeners map[listenerKey]listener
	closed    bool

	// state is read by the health servers.
	stateMu sync.Mutex
	// healthOwner maps a health-check port to its Service.
	healthOwner map[int]string
	local       map[string]int
}

// New returns an agent for the node name with address ip (e.g. 127.0.1.1);
// it serves nothing until SetServices.
func New(name, ip string) (*Agent, error) {
	if name == "" {
		return nil, errors.New("node agent: name must not be empty")
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("node agent %s: ip: %w", name, err)
	}
	return &Agent{
		name:        name,
		ip:          addr,
		listeners:   map[listenerKey]listener{},
		healthOwner: map[int]string{},
		local:       map[string]int{},
	}, nil
}

// Name is the node name.
func (a *Agent) Name() string { return a.name }

// IP is the node address.
func (a *Agent) IP() netip.Addr { return a.ip }

// SetServices makes the agent serve exactly svcs. Listeners that stay are
// kept (with their connections); new ones open, others close. When a port
// cannot be opened nothing changes and the error names the port.
func (a *Agent) SetServices(svcs []ServicePorts) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("node agent %s is closed", a.name)
	}
	want := map[listenerKey]string{}
	owners := map[int]string{}
	for _, svc := range svcs {
		for _, p := range svc.Ports {
			if p.Protocol != TCP && p.Protocol != UDP {
				return fmt.Errorf("node agent %s: service %s: protocol %q: must be TCP or UDP", a.name, svc.Name, p.Protocol)
			}
			k := listenerKey{p.Protocol, p.NodePort}
			if other, dup := want[k]; dup && other != svc.Name {
				return fmt.Errorf("node agent %s: %s node port %d used by both %s and %s", a.name, p.Protocol, p.NodePort, other, svc.Name)
			}
			want[k] = svc.Name
		}
		if svc.HealthCheckNodePort != 0 {
			k := listenerKey{"health", svc.HealthCheckNodePort}
			if other, dup := want[k]; dup && other != svc.Name {
				return fmt.Errorf("node agent %s: health-check node port %d used by both %s and %s", a.name, svc.HealthCheckNodePort, other, svc.Name)
			}
			want[k] = svc.Name
			owners[svc.HealthCheckNodePort] = svc.Name
		}
	}

	opened := map[listenerKey]listener{}
	for k := range want {
		if _, ok := a.listeners[k]; ok {
			continue
		}
		l, err := a.open(k)
		if err != nil {
			for _, l := range opened {
				l.close()
			}
			return err
		}
		opened[k] = l
	}
	a.stateMu.Lock()
	a.healthOwner = owners
	a.stateMu.Unlock()
	for k, l := range a.listeners {
		if _, ok := want[k]; !ok {
			l.close()
			delete(a.listeners, k)
		}
	}
	for k, l := range opened {
		a.listeners[k] = l
	}
	return nil
}

func (a *Agent) open(k listenerKey) (listener, error) {
	addr := netip.AddrPortFrom(a.ip, uint16(k.port))
	var l listener
	var err error
	switch k.protocol {
	case TCP:
		l, err = newTCPEcho(a.name, addr)
	case UDP:
		l, err = newUDPEcho(a.name, addr)
	default:
		l, err = newHealthServer(a, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("node agent %s: %s port %d: %w", a.name, k.protocol, k.port, err)
	}
	return l, nil
}

// SetLocalEndpoints sets, per Service name, how many of its endpoints run
// on this node; Services not in counts have none.
func (a *Agent) SetLocalEndpoints(counts map[string]int) {
	local := make(map[string]int, len(counts))
	for k, v := range counts {
		local[k] = v
	}
	a.stateMu.Lock()
	a.local = local
	a.stateMu.Unlock()
}

// healthOf returns the Service behind a health-check port and its local
// endpoint count.
func (a *Agent) healthOf(port int) (string, int, bool) {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	svc, ok := a.healthOwner[port]
	return svc, a.local[svc], ok
}

// Close stops every listener and ends their connections.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for k, l := range a.listeners {
		l.close()
		delete(a.listeners, k)
	}
	return nil
}
