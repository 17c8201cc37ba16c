package cluster_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/fake/cluster/clustertest"
)

func TestUnixSocketRelayServesClientConfig(t *testing.T) {
	c := controlPlane.Get(t)
	sock := filepath.Join(t.TempDir(), "apiserver.sock")
	if err := c.UnixSocketRelay(sock); err != nil {
		t.Fatalf("UnixSocketRelay: %v", err)
	}
	cfg := cluster.RelayConfig(c.AdminConfig(), sock)
	// Nothing listens on port 1: only the relay can answer.
	cfg.Host = "https://127.0.0.1:1"
	if _, err := mustClient(t, cfg).CoreV1().Namespaces().Get(t.Context(), metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
		t.Fatalf("request through the relay: %v", err)
	}
	if err := c.UnixSocketRelay(sock); err == nil {
		t.Errorf("a second relay on the same path succeeded")
	}
}

// TestUnixSocketRelayReachesAPIServerFromNetworkNamespace is the reason the
// relay exists: from a fresh network namespace the API server's loopback
// port is unreachable, the unix socket is not.
func TestUnixSocketRelayReachesAPIServerFromNetworkNamespace(t *testing.T) {
	c := controlPlane.Get(t)
	sock := filepath.Join(t.TempDir(), "apiserver.sock")
	if err := c.UnixSocketRelay(sock); err != nil {
		t.Fatalf("UnixSocketRelay: %v", err)
	}
	token := c.AdminConfig().BearerToken
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData())

	type result struct {
		unshareErr error
		tcpErr     error
		status     int
		err        error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its
		// network namespace with it.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.unshareErr = syscall.Unshare(syscall.CLONE_NEWNET); r.unshareErr != nil {
			return
		}
		tcp, err := net.DialTimeout("tcp", strings.TrimPrefix(c.URL(), "https://"), time.Second)
		if err == nil {
			tcp.Close()
		}
		r.tcpErr = err
		r.status, r.err = getOverUnixSocket(sock, pool, token, "/api/v1/namespaces/default")
	}()
	r := <-done
	if r.unshareErr != nil {
		if errors.Is(r.unshareErr, syscall.EPERM) {
			t.Skipf("creating a network namespace needs root: %v", r.unshareErr)
		}
		t.Fatalf("unshare: %v", r.unshareErr)
	}
	if r.tcpErr == nil {
		t.Fatalf("the API server's TCP port is reachable from the new namespace, so this test proves nothing")
	}
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("GET through the relay from the namespace: status %d, %v", r.status, r.err)
	}
}

// getOverUnixSocket sends one HTTPS GET over a connection to the socket,
// all on the calling goroutine.
func getOverUnixSocket(sock string, pool *x509.CertPool, token, path string) (int, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tlsConn := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if _, err := fmt.Fprintf(tlsConn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, token); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tlsConn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestRelayClosedByStop(t *testing.T) {
	c := clustertest.Start(t)
	sock := filepath.Join(t.TempDir(), "apiserver.sock")
	if err := c.UnixSocketRelay(sock); err != nil {
		t.Fatalf("UnixSocketRelay: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s still there after Stop (%v)", sock, err)
	}
	if err := c.UnixSocketRelay(filepath.Join(t.TempDir(), "late.sock")); err == nil {
		t.Errorf("UnixSocketRelay on a stopped cluster succeeded")
	}
}
