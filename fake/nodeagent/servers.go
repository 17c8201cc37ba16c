package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// tcpEcho greets each connection with the node name and echoes.
type tcpEcho struct {
	ln    *net.TCPListener
	greet []byte
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*net.TCPConn]struct{}
	done  bool
}

func newTCPEcho(node string, addr netip.AddrPort) (*tcpEcho, error) {
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	e := &tcpEcho{ln: ln, greet: []byte(node + "\n"), conns: map[*net.TCPConn]struct{}{}}
	e.wg.Add(1)
	go e.serve()
	return e, nil
}

func (e *tcpEcho) serve() {
	defer e.wg.Done()
	for {
		c, err := e.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		e.mu.Lock()
		if e.done {
			e.mu.Unlock()
			_ = c.Close()
			return
		}
		e.conns[c] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		go func() {
			defer e.wg.Done()
			defer func() {
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				_ = c.Close()
			}()
			if _, err := c.Write(e.greet); err != nil {
				return
			}
			// TCPConn to itself: splice(2) through a pipe on Linux.
			if _, err := io.Copy(c, c); err != nil {
				return
			}
			_ = c.CloseWrite()
		}()
	}
}

func (e *tcpEcho) close() {
	_ = e.ln.Close()
	e.mu.Lock()
	e.done = true
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// udpEcho answers each datagram with "node\n" + payload.
type udpEcho struct {
	conn *net.UDPConn
	done chan struct{}
}

func newUDPEcho(node string, addr netip.AddrPort) (*udpEcho, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	u := &udpEcho{conn: c, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		prefix := len(node) + 1
		buf := make([]byte, 64<<10+prefix)
		copy(buf, node+"\n")
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf[prefix:])
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = c.WriteToUDPAddrPort(buf[:prefix+n], src)
		}
	}()
	return u, nil
}

func (u *udpEcho) close() {
	_ = u.conn.Close()
	<-u.done
}

// healthServer answers GET /healthz for the Service that owns its port.
type healthServer struct {
	srv  *http.Server
	done chan struct{}
}

// healthResponse mirrors kube-proxy's service health-check body.
type healthResponse struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func newHealthServer(a *Agent, addr netip.AddrPort) (*healthServer, error) {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	port := int(addr.Port())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		svc, count, ok := a.healthOf(port)
		if !ok {
			http.Error(w, "no service on this port", http.StatusNotFound)
			return
		}
		var body healthResponse
		body.Service.Namespace, body.Service.Name, _ = strings.Cut(svc, "/")
		body.LocalEndpoints = count
		body.ServiceProxyHealthy = true
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if count > 0 {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	h := &healthServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(ln)
	}()
	return h, nil
}

func (h *healthServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
}
