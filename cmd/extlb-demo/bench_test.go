package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/extlb/extlb/fake/cluster"
)

// BenchmarkDemoTimeToTable measures how long `extlb-demo` takes from start
// to the printed table of the four examples (control plane, nodes,
// controller, addresses, 6 connections or datagrams per port) and to a
// complete shutdown, against the reference of starting and stopping the
// control plane alone in the same process.
func BenchmarkDemoTimeToTable(b *testing.B) {
	bins, err := cluster.EnsureBinaries(b.Context(), os.Stderr)
	if err != nil {
		b.Skipf("control-plane binaries: %v", err)
	}
	root := repoRoot(b)
	const rounds = 5
	var controlPlane, table, afterStart, stop []time.Duration
	for range rounds {
		begin := time.Now()
		c, err := cluster.Start(b.Context(), cluster.Options{Binaries: bins})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		controlPlane = append(controlPlane, time.Since(begin))

		ctx, cancel := context.WithCancel(b.Context())
		tabled := make(chan time.Duration, 1)
		var started time.Time
		discard := logr.Discard()
		begin = time.Now()
		opts := Options{
			ExamplesDir:         filepath.Join(root, "manifests", "examples"),
			ControllerManifests: filepath.Join(root, "manifests", "controller"),
			KubeconfigOut:       filepath.Join(b.TempDir(), "kubeconfig"),
			FirstNodeIP:         netip.MustParseAddr("127.214.2.1"),
			VIPRange:            netip.MustParsePrefix("127.214.102.0/24"),
			Out:                 io.Discard,
			Logger:              &discard,
			Binaries:            bins,
			Hooks: Hooks{Started: func(Info) { started = time.Now() }, Examples: func(rows []Row) {
				afterStart = append(afterStart, time.Since(started))
				tabled <- time.Since(begin)
				for _, r := range rows {
					if r.ExternalIP == "" {
						b.Errorf("%s got no address", r.Service)
					}
				}
			}},
		}
		done := make(chan error, 1)
		go func() { done <- Run(ctx, opts) }()
		select {
		case d := <-tabled:
			table = append(table, d)
		case err := <-done:
			b.Fatalf("demo ended early: %v", err)
		}
		stopBegin := time.Now()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		stop = append(stop, time.Since(stopBegin))
	}
	cp, tt, as, st := median(controlPlane), median(table), median(afterStart), median(stop)
	b.ReportMetric(ms(cp), "controlplane-ms")
	b.ReportMetric(ms(tt), "table-ms")
	b.ReportMetric(ms(as), "started-to-table-ms")
	b.ReportMetric(ms(st), "shutdown-ms")
	b.ReportMetric(float64(tt)/float64(cp), "table/controlplane")
	b.Logf("medians of %d rounds: control plane start+stop %s (reference); demo start to table %s (%.2f×), of which controller running to table %s; demo shutdown %s; rounds: %v / %v / %v / %v",
		rounds, cp.Round(time.Millisecond), tt.Round(time.Millisecond), float64(tt)/float64(cp), as.Round(time.Millisecond), st.Round(time.Millisecond), controlPlane, table, afterStart, stop)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
