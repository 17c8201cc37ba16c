package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/extlb/extlb/fake/cluster"
)

// BenchmarkStart measures start-up after the binaries exist, phase by
// phase, and Stop. The reference is etcd's own start-up in the same run.
func BenchmarkStart(b *testing.B) {
	bins, err := cluster.EnsureBinaries(b.Context(), os.Stderr)
	if err != nil {
		b.Skipf("control-plane binaries unavailable: %v", err)
	}
	var etcd, readyz, ready, stop time.Duration
	for b.Loop() {
		c, err := cluster.Start(b.Context(), cluster.Options{Binaries: bins})
		if err != nil {
			b.Fatal(err)
		}
		timings := c.StartupTimings()
		etcd += timings.Etcd
		readyz += timings.APIServerReady
		ready += timings.DefaultNamespace
		begin := time.Now()
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		stop += time.Since(begin)
	}
	n := float64(b.N)
	b.ReportMetric(ms(etcd)/n, "etcd-ms")
	b.ReportMetric(ms(readyz)/n, "readyz-ms")
	b.ReportMetric(ms(ready)/n, "ready-ms")
	b.ReportMetric(ms(stop)/n, "stop-ms")
	b.ReportMetric(float64(ready)/float64(etcd), "ready/etcd")
	b.Logf("start-up: etcd %.0f ms, /readyz %.0f ms, default namespace %.0f ms (%.1fx etcd alone); Stop %.0f ms",
		ms(etcd)/n, ms(readyz)/n, ms(ready)/n, float64(ready)/float64(etcd), ms(stop)/n)
}

// BenchmarkRelayRequest compares a GET through the unix socket relay with
// the same GET straight to the loopback port (the reference), each on one
// kept-alive connection, 300 requests each.
func BenchmarkRelayRequest(b *testing.B) {
	c := controlPlane.Get(b)
	sock := filepath.Join(b.TempDir(), "apiserver.sock")
	if err := c.UnixSocketRelay(sock); err != nil {
		b.Fatal(err)
	}
	const requests = 300
	var direct, relayed time.Duration
	for b.Loop() {
		direct += timeGets(b, c.AdminConfig(), requests)
		relayed += timeGets(b, cluster.RelayConfig(c.AdminConfig(), sock), requests)
	}
	perReq := float64(b.N * requests)
	b.ReportMetric(float64(direct.Microseconds())/perReq, "direct-us/req")
	b.ReportMetric(float64(relayed.Microseconds())/perReq, "relay-us/req")
	b.ReportMetric(float64(relayed)/float64(direct), "relay/direct")
	b.Logf("GET namespace: direct %.0f µs, through relay %.0f µs (%.2fx)",
		float64(direct.Microseconds())/perReq, float64(relayed.Microseconds())/perReq, float64(relayed)/float64(direct))
}

func timeGets(b *testing.B, cfg *rest.Config, n int) time.Duration {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS = -1 // no client-side rate limit: measure the server and the relay
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	get := func() {
		if _, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	get() // connect and warm up outside the measurement
	begin := time.Now()
	for range n {
		get()
	}
	return time.Since(begin)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
