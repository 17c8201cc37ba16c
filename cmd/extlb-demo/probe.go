package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ProbeOptions bound the traffic the demo sends through each load-balancer
// port.
type ProbeOptions struct {
	// Connections is the number of TCP connections per TCP port.
	Connections int
	// Datagrams is the number of UDP datagrams per UDP port, each from a
	// socket of its own, so that each is a new flow the load balancer
	// places on a backend.
	Datagrams int
	// Timeout bounds each connection or datagram exchange.
	Timeout time.Duration
	// Warmup is how long a port may take to answer its first exchange
	// (health checks of a new load balancer settle in an interval or two);
	// that exchange is not counted.
	Warmup time.Duration
}

// DefaultProbeOptions are the demo's defaults.
func DefaultProbeOptions() ProbeOptions {
	return ProbeOptions{Connections: 6, Datagrams: 6, Timeout: 2 * time.Second, Warmup: 20 * time.Second}
}

// PortResult is what one load-balancer port answered.
type PortResult struct {
	Port     int32
	Protocol string
	// Answers counts answers per node name.
	Answers map[string]int
	// Sent is the number of connections or datagrams counted; Failed how
	// many of them got no correct answer.
	Sent, Failed int
	// LastError is the last failure, if any.
	LastError string
}

// Nodes returns the names of the nodes that answered, sorted.
func (p PortResult) Nodes() []string {
	var nodes []string
	for n := range p.Answers {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	return nodes
}

// probePort sends opts' traffic to ip:port and records which node answered
// each exchange. The number of exchanges and the time each may take are
// bounded.
func probePort(ctx context.Context, ip netip.Addr, port int32, protocol string, opts ProbeOptions) PortResult {
	res := PortResult{Port: port, Protocol: protocol, Answers: map[string]int{}}
	addr := netip.AddrPortFrom(ip, uint16(port))
	exchange, count := tcpExchange, opts.Connections
	if protocol == "UDP" {
		exchange, count = udpExchange, opts.Datagrams
	}
	// Warm-up: until one exchange works or opts.Warmup passes.
	deadline := time.Now().Add(opts.Warmup)
	for attempt := 0; ; attempt++ {
		if _, err := exchange(ctx, addr, fmt.Sprintf("warmup-%d", attempt), opts.Timeout); err == nil {
			break
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			res.LastError = err.Error()
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for i := range count {
		if ctx.Err() != nil {
			break
		}
		res.Sent++
		node, err := exchange(ctx, addr, fmt.Sprintf("extlb-demo-%d", i), opts.Timeout)
		if err != nil {
			res.Failed++
			res.LastError = err.Error()
			continue
		}
		res.Answers[node]++
	}
	return res
}

// tcpExchange opens one connection, reads the node agent's greeting (the
// node's name), sends payload, half-closes and checks the echo.
func tcpExchange(ctx context.Context, addr netip.AddrPort, payload string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("tcp %s: reading greeting: %w", addr, err)
	}
	if _, err := io.WriteString(conn, payload); err != nil {
		return "", fmt.Errorf("tcp %s: sending: %w", addr, err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return "", fmt.Errorf("tcp %s: half-close: %w", addr, err)
	}
	echo, err := io.ReadAll(io.LimitReader(r, int64(len(payload)+1)))
	if err != nil {
		return "", fmt.Errorf("tcp %s: reading echo: %w", addr, err)
	}
	if string(echo) != payload {
		return "", fmt.Errorf("tcp %s: echo %q, want %q", addr, echo, payload)
	}
	return strings.TrimSuffix(greeting, "\n"), nil
}

// udpExchange sends payload from a fresh socket and parses the node agent's
// reply, "<node>\n<payload>".
func udpExchange(ctx context.Context, addr netip.AddrPort, payload string, timeout time.Duration) (string, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte(payload)); err != nil {
		return "", fmt.Errorf("udp %s: sending: %w", addr, err)
	}
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		return "", fmt.Errorf("udp %s: no reply: %w", addr, err)
	}
	node, echo, ok := strings.Cut(string(buf[:n]), "\n")
	if !ok || echo != payload {
		return "", fmt.Errorf("udp %s: reply %q does not echo %q", addr, buf[:n], payload)
	}
	return node, nil
}
