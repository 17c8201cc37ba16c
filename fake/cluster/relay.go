package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// relay accepts connections on a unix socket and forwards each one to the
// API server's loopback port. Unix sockets live in the file system, which
// network namespaces share, so a process in a namespace that cannot reach
// the root namespace's 127.0.0.1 can still reach the API server.
type relay struct {
	path     string
	target   string
	listener net.Listener
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// UnixSocketRelay listens on the unix socket path and relays every
// connection to the API server, until Stop. Use RelayConfig to build a
// client config that connects through it.
func (c *Cluster) UnixSocketRelay(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("unix socket relay %s: the cluster is stopped", path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("unix socket relay %s: %w", path, err)
	}
	r := &relay{path: path, target: strings.TrimPrefix(c.url, "https://"), listener: l, conns: map[net.Conn]struct{}{}}
	c.relays = append(c.relays, r)
	r.wg.Add(1)
	go r.serve()
	return nil
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		conn, err := r.listener.Accept()
		if err != nil {
			return // closed
		}
		if !r.track(conn) {
			conn.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(conn)
			r.forward(conn)
		}()
	}
}

func (r *relay) forward(client net.Conn) {
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	if !r.track(server) {
		server.Close()
		return
	}
	defer r.untrack(server)
	done := make(chan struct{})
	go func() {
		io.Copy(server, client)
		// Half-close so the server sees the client's end of stream.
		server.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(client, server)
	client.(*net.UnixConn).CloseWrite()
	<-done
}

func (r *relay) track(conn net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return false
	}
	r.conns[conn] = struct{}{}
	return true
}

func (r *relay) untrack(conn net.Conn) {
	r.mu.Lock()
	delete(r.conns, conn)
	r.mu.Unlock()
	conn.Close()
}

// close stops accepting, cuts every relayed connection, waits for the
// goroutines and removes the socket file.
func (r *relay) close() {
	r.listener.Close()
	r.mu.Lock()
	r.done = true
	for conn := range r.conns {
		conn.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	os.Remove(r.path)
}

// RelayConfig returns a copy of cfg that reaches the API server through the
// unix socket relay at socketPath. The server name and certificate checks
// stay as in cfg.
func RelayConfig(cfg *rest.Config, socketPath string) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socketPath)
	}
	return out
}
