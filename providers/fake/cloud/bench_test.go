package cloud_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extlb/extlb/fake/nodeagent"
	"github.com/extlb/extlb/providers/fake/api"
)

// The benchmarks compare, in one run, the same backend
// reached directly, through a fake-cloud load balancer and through haproxy
// (TCP mode, started from a config the benchmark writes; skipped with a
// message when the binary is missing). Every load is fixed in size and
// capped in time. Addresses: 127.205.0.0/16.
//
//	go test -run '^$' -bench . -benchtime=1x ./fake/cloud/

const (
	benchBulkBytes   = 1 << 30 // per transfer
	benchRounds      = 5       // interleaved rounds per path; the median is reported
	benchConnRounds  = 7       // connection rates are noisier
	benchConns       = 2000    // connections per path and round
	benchConnWorkers = 8
	benchUDPClients  = 4
	benchUDPPackets  = 5000 // per client, per path and round
	benchTimeCap     = 30 * time.Second
)

// benchPath is one way to reach a backend.
type benchPath struct {
	name string
	addr netip.AddrPort
	// pid is the proxy's process, whose CPU time is measured; 0 for none.
	pid int
}

// sinkBackend reads each connection to its end with a large buffer, then
// writes the byte count and closes: the receiving side of bulk transfers.
func sinkBackend(b *testing.B, addr string) netip.AddrPort {
	b.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<20)
				var n int64
				for {
					k, err := c.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				_, _ = io.WriteString(c, strconv.FormatInt(n, 10))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// greetBackend writes one line on each connection and closes it first, so
// that TIME_WAIT lands on the listening side and the benchmark does not use
// up the machine's ephemeral ports.
func greetBackend(b *testing.B, ip string, port int) netip.AddrPort {
	b.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		greeting := []byte("hello\n")
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = c.Write(greeting)
				_ = c.Close()
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// bulk sends benchBulkBytes to addr and returns Gbit/s.
func bulk(addr netip.AddrPort) (float64, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(benchTimeCap))
	buf := make([]byte, 1<<20)
	start := time.Now()
	for sent := 0; sent < benchBulkBytes; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	if string(reply) != strconv.Itoa(benchBulkBytes) {
		return 0, fmt.Errorf("backend received %s bytes, want %d", reply, benchBulkBytes)
	}
	return float64(benchBulkBytes) * 8 / time.Since(start).Seconds() / 1e9, nil
}

// connRate opens benchConns connections with benchConnWorkers in parallel,
// each reading the backend's greeting to its end before closing;
// connections/s.
func connRate(addr netip.AddrPort) (float64, error) {
	var next atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(benchTimeCap)
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for next.Add(1) <= benchConns && time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				n, err := io.ReadFull(c, buf[:6])
				if err == nil {
					// The backend closes after its line: wait for the EOF.
					_, err = c.Read(buf)
					if err == io.EOF {
						err = nil
					} else if err == nil {
						err = errors.New("more than the greeting")
					}
				}
				_ = c.Close()
				if err != nil || string(buf[:n]) != "hello\n" {
					firstErr.CompareAndSwap(nil, fmt.Errorf("greeting %q: %v", buf[:n], err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	if time.Now().After(deadline) {
		return 0, errors.New("time cap reached")
	}
	return benchConns / time.Since(start).Seconds(), nil
}

// udpRate runs benchUDPClients ping-pong clients of benchUDPPackets each;
// answered packets/s and the number lost.
func udpRate(addr netip.AddrPort) (float64, int64, error) {
	var answered, lost atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(benchTimeCap)
	errc := make(chan error, benchUDPClients)
	for range benchUDPClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			payload := make([]byte, 64)
			buf := make([]byte, 2048)
			for range benchUDPPackets {
				if time.Now().After(deadline) {
					return
				}
				if _, err := c.Write(payload); err != nil {
					errc <- err
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					lost.Add(1)
					continue
				}
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	return float64(answered.Load()) / time.Since(start).Seconds(), lost.Load(), nil
}

// benchSetup starts the backends, a fake cloud load balancer and haproxy;
// each path gets a backend of its own so that no two share TIME_WAIT ports.
func benchSetup(b *testing.B, block int, backend func(b *testing.B, ip string, port int) netip.AddrPort, protocol string) []benchPath {
	b.Helper()
	base := fmt.Sprintf("127.205.%d.", block)
	port := 30100 + block
	direct := backend(b, base+"11", port)
	oursBackend := backend(b, base+"12", port)
	url, pid := startCloudProcess(b, base+"0/28")
	lb := apiClient{t: b, url: url}.put("bench", api.LoadBalancerSpec{
		Ports:    []api.Port{{Protocol: protocol, Port: 8080, BackendPort: port}},
		Backends: []api.Backend{{Name: "n", Address: oursBackend.Addr().String()}},
	})
	paths := []benchPath{
		{"direct", direct, 0},
		{"fakecloud", netip.AddrPortFrom(netip.MustParseAddr(lb.Status.Address), 8080), pid},
	}
	if protocol != api.ProtocolTCP {
		return paths
	}
	haBackend := backend(b, base+"13", port)
	haListen := netip.MustParseAddrPort(base + "21:8080")
	haPID := startHAProxy(b, "haproxy", haListen, haBackend, "")
	if haPID == 0 {
		b.Logf("haproxy not found in PATH: skipping the haproxy comparison (apt-get install haproxy)")
		return paths
	}
	paths = append(paths, benchPath{"haproxy", haListen, haPID})
	haSpliceBackend := backend(b, base+"14", port)
	haSpliceListen := netip.MustParseAddrPort(base + "22:8080")
	haSplicePID := startHAProxy(b, "haproxy-splice", haSpliceListen, haSpliceBackend, "    option splice-auto\n")
	return append(paths, benchPath{"haproxy-splice", haSpliceListen, haSplicePID})
}

// measurement is what measure found for each path.
type measurement struct {
	// median of the rounds' results
	median map[string]float64
	// cpu is the proxy process's CPU time (user and system) over all rounds.
	cpu map[string]time.Duration
}

// measure runs fn over every path rounds times, interleaved, and returns
// the median per path and the CPU time its proxy used.
func measure(b *testing.B, paths []benchPath, rounds int, fn func(netip.AddrPort) (float64, error)) measurement {
	b.Helper()
	runs := map[string][]float64{}
	m := measurement{median: map[string]float64{}, cpu: map[string]time.Duration{}}
	for range rounds {
		for _, p := range paths {
			before := processCPU(p.pid)
			v, err := fn(p.addr)
			if err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
			m.cpu[p.name] += processCPU(p.pid) - before
			runs[p.name] = append(runs[p.name], v)
		}
	}
	for name, vs := range runs {
		slices.Sort(vs)
		m.median[name] = vs[len(vs)/2]
		b.Logf("%-15s %v", name, vs)
	}
	return m
}

// processCPU is a process's user+system CPU time from /proc (10 ms ticks);
// 0 for pid 0 or when it cannot be read.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th fields of the line, 12th and 13th after ')'.
	i := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// report prints the medians, the throughput ratios, and the proxies' CPU
// time per operation (ops operations per path over all rounds) and its
// ratio: CPU per operation does not depend on how busy the machine is.
func report(b *testing.B, m measurement, unit string, ops float64, opUnit string) {
	b.Helper()
	med := m.median
	for _, name := range []string{"direct", "fakecloud", "haproxy", "haproxy-splice"} {
		if v, ok := med[name]; ok {
			b.ReportMetric(v, name+"-"+unit)
		}
	}
	ours := med["fakecloud"]
	b.ReportMetric(ours/med["direct"], "fakecloud/direct")
	line := fmt.Sprintf("fakecloud %.3g %s = %.2f× direct", ours, unit, ours/med["direct"])
	if ha, ok := med["haproxy"]; ok {
		b.ReportMetric(ours/ha, "fakecloud/haproxy")
		line += fmt.Sprintf(", %.2f× haproxy", ours/ha)
	}
	if ha, ok := med["haproxy-splice"]; ok {
		b.ReportMetric(ours/ha, "fakecloud/haproxy-splice")
		line += fmt.Sprintf(", %.2f× haproxy with splice-auto", ours/ha)
	}
	b.Log(line)

	cpuLine := "proxy CPU per " + opUnit + ":"
	for _, name := range []string{"fakecloud", "haproxy", "haproxy-splice"} {
		if c, ok := m.cpu[name]; ok {
			per := float64(c.Microseconds()) / ops
			b.ReportMetric(per, name+"-cpu-us/"+opUnit)
			cpuLine += fmt.Sprintf(" %s %.1f µs", name, per)
		}
	}
	if ha := m.cpu["haproxy"]; ha > 0 {
		r := float64(m.cpu["fakecloud"]) / float64(ha)
		b.ReportMetric(r, "fakecloud/haproxy-cpu")
		cpuLine += fmt.Sprintf(" (fakecloud uses %.2f× haproxy's CPU)", r)
	}
	b.Log(cpuLine)
}

func sinkAt(b *testing.B, ip string, port int) netip.AddrPort {
	return sinkBackend(b, net.JoinHostPort(ip, strconv.Itoa(port)))
}

func agentAt(protocol string) func(b *testing.B, ip string, port int) netip.AddrPort {
	return func(b *testing.B, ip string, port int) netip.AddrPort {
		a, err := nodeagent.New("n", ip)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close() })
		if err := a.SetServices([]nodeagent.ServicePorts{{Name: "bench/svc", Ports: []nodeagent.Port{{Protocol: protocol, NodePort: port}}}}); err != nil {
			b.Fatal(err)
		}
		return netip.AddrPortFrom(a.IP(), uint16(port))
	}
}

// BenchmarkTCPBulk: one connection pushing 1 GiB, Gbit/s.
func BenchmarkTCPBulk(b *testing.B) {
	paths := benchSetup(b, 1, sinkAt, api.ProtocolTCP)
	for range b.N {
		report(b, measure(b, paths, benchRounds, bulk), "Gbit/s", benchRounds*benchBulkBytes>>30, "GiB")
	}
}

// BenchmarkTCPConnectionRate: short connections (connect, read a line until
// the backend closes, close) from 8 parallel clients, connections/s.
func BenchmarkTCPConnectionRate(b *testing.B) {
	paths := benchSetup(b, 2, greetBackend, api.ProtocolTCP)
	for range b.N {
		report(b, measure(b, paths, benchConnRounds, connRate), "conn/s", benchConnRounds*benchConns, "conn")
	}
}

// BenchmarkUDPPackets: 4 ping-pong clients of 64-byte datagrams, answered
// packets/s (haproxy does not forward UDP).
func BenchmarkUDPPackets(b *testing.B) {
	paths := benchSetup(b, 3, agentAt(nodeagent.UDP), api.ProtocolUDP)
	for range b.N {
		var lost int64
		med := measure(b, paths, benchRounds, func(a netip.AddrPort) (float64, error) {
			v, l, err := udpRate(a)
			lost += l
			return v, err
		})
		report(b, med, "pkt/s", benchRounds*benchUDPClients*benchUDPPackets, "pkt")
		b.ReportMetric(float64(lost), "lost-packets")
	}
}
