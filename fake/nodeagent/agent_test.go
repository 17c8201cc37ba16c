package nodeagent

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extlb/extlb/test/loopback"
)

// newAgent starts an agent on an address of a loopback block of the test's
// own (test/loopback), so that its fixed node ports are free; ip is that
// address.
func newAgent(t *testing.T, name string) (a *Agent, ip string) {
	t.Helper()
	ip = loopback.Reserve(t).IP(1)
	a, err := New(name, ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, ip
}

func TestTCPGreetsAndEchoesWithHalfClose(t *testing.T) {
	a, ip := newAgent(t, "node-a")
	if err := a.SetServices([]ServicePorts{{Name: "default/web", Ports: []Port{{TCP, 30080}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ip+":30080")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	payload := strings.Repeat("0123456789", 100000)
	go func() {
		_, _ = io.WriteString(c, payload)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(all) != "node-a\n"+payload {
		t.Errorf("got %d bytes starting %q, want greeting then %d echoed bytes", len(all), all[:min(20, len(all))], len(payload))
	}
}

func TestUDPRepliesWithNodeName(t *testing.T) {
	a, ip := newAgent(t, "node-b")
	if err := a.SetServices([]ServicePorts{{Name: "default/dns", Ports: []Port{{UDP, 30053}, {TCP, 30053}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", ip+":30053")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("query"))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "node-b\nquery" {
		t.Errorf("reply %q, %v", buf[:n], err)
	}
	// The TCP port with the same number works too.
	tc, err := net.Dial("tcp", ip+":30053")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if line, err := bufio.NewReader(tc).ReadString('\n'); err != nil || line != "node-b\n" {
		t.Errorf("TCP greeting %q, %v", line, err)
	}
}

func TestHealthCheckNodePortFollowsLocalEndpoints(t *testing.T) {
	a, ip := newAgent(t, "node-c")
	if err := a.SetServices([]ServicePorts{{Name: "shop/web", Ports: []Port{{TCP, 30080}}, HealthCheckNodePort: 32001}}); err != nil {
		t.Fatal(err)
	}
	check := func(wantCode, wantCount int) {
		t.Helper()
		resp, err := http.Get("http://" + ip + ":32001/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body healthResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantCode || body.LocalEndpoints != wantCount || body.Service.Namespace != "shop" || body.Service.Name != "web" {
			t.Errorf("healthz: %d %+v, want %d with %d local endpoints", resp.StatusCode, body, wantCode, wantCount)
		}
	}
	check(503, 0)
	a.SetLocalEndpoints(map[string]int{"shop/web": 2})
	check(200, 2)
	a.SetLocalEndpoints(map[string]int{"other/svc": 1})
	check(503, 0)
}

func TestSetServicesDiffsListeners(t *testing.T) {
	a, ip := newAgent(t, "node-d")
	web := ServicePorts{Name: "default/web", Ports: []Port{{TCP, 30080}}}
	db := ServicePorts{Name: "default/db", Ports: []Port{{TCP, 30432}}}
	if err := a.SetServices([]ServicePorts{web, db}); err != nil {
		t.Fatal(err)
	}
	kept, err := net.Dial("tcp", ip+":30080")
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	r := bufio.NewReader(kept)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// Same set again, then db removed: web's connection survives both.
	for _, set := range [][]ServicePorts{{web, db}, {web}} {
		if err := a.SetServices(set); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kept.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	_ = kept.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "still\n" {
		t.Errorf("kept connection: %q, %v", line, err)
	}
	if c, err := net.DialTimeout("tcp", ip+":30432", time.Second); err == nil {
		_ = c.Close()
		t.Errorf("removed node port 30432 still listening")
	}
}

func TestSetServicesRejectsConflictsAndChangesNothing(t *testing.T) {
	a, ip := newAgent(t, "node-e")
	web := ServicePorts{Name: "default/web", Ports: []Port{{TCP, 30080}}}
	if err := a.SetServices([]ServicePorts{web}); err != nil {
		t.Fatal(err)
	}
	squatter, err := net.Listen("tcp", ip+":30099")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	for _, tc := range []struct {
		desc string
		svcs []ServicePorts
		want string
	}{
		{"same node port twice", []ServicePorts{web, {Name: "default/other", Ports: []Port{{TCP, 30080}}}}, "used by both"},
		{"bad protocol", []ServicePorts{{Name: "default/x", Ports: []Port{{"SCTP", 30081}}}}, "must be TCP or UDP"},
		{"port taken", []ServicePorts{{Name: "default/x", Ports: []Port{{TCP, 30081}, {TCP, 30099}}}}, "TCP port 30099"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if err := a.SetServices(tc.svcs); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetServices: %v, want %q", err, tc.want)
			}
			if c, err := net.DialTimeout("tcp", ip+":30080", time.Second); err != nil {
				t.Errorf("web's port closed by a failed SetServices: %v", err)
			} else {
				_ = c.Close()
			}
			if c, err := net.DialTimeout("tcp", ip+":30081", time.Second); err == nil {
				_ = c.Close()
				t.Errorf("port 30081 of a failed SetServices is listening")
			}
		})
	}
}
