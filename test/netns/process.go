package netns

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"time"
)

// Command returns a command that runs name inside the host's namespace
// (through `ip netns exec`, which execs name in place: the process is
// name's, and signals reach it).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.nsName, name}, args...)...)
}

// HTTPGet fetches path from addr, an address inside the host's namespace
// (its loopback included), over HTTP/1.0 on a connection opened from
// inside the namespace, and returns the whole response.
func (h *Host) HTTPGet(addr netip.AddrPort, path string) (string, error) {
	var body string
	err := h.Do(func() error {
		conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
			return err
		}
		b, err := io.ReadAll(conn)
		body = string(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s: GET http://%s%s: %w", h.Name, addr, path, err)
	}
	return body, nil
}
