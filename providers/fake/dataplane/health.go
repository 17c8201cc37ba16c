package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/fake/api"
)

// healthCheck is a resolved api.HealthCheck (defaults applied).
type healthCheck struct {
	kind               string
	port               int
	path               string
	interval, timeout  time.Duration
	healthy, unhealthy int
}

func resolveHealthCheck(hc *api.HealthCheck) healthCheck {
	if hc == nil || hc.Type == api.HealthCheckNone || hc.Type == "" {
		return healthCheck{kind: api.HealthCheckNone}
	}
	d := hc.WithDefaults()
	return healthCheck{
		kind:      d.Type,
		port:      d.Port,
		path:      d.Path,
		interval:  time.Duration(d.IntervalMillis) * time.Millisecond,
		timeout:   time.Duration(d.TimeoutMillis) * time.Millisecond,
		healthy:   d.HealthyThreshold,
		unhealthy: d.UnhealthyThreshold,
	}
}

// prober probes one backend address once.
type prober func(ctx context.Context, addr netip.Addr) error

func (hc healthCheck) prober() prober {
	switch hc.kind {
	case api.HealthCheckTCP:
		return func(ctx context.Context, addr netip.Addr) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(hc.port)).String())
			if err != nil {
				return err
			}
			return c.Close()
		}
	case api.HealthCheckHTTP:
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
		return func(ctx context.Context, addr netip.Addr) error {
			url := "http://" + net.JoinHostPort(addr.String(), strconv.Itoa(hc.port)) + hc.path
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
			}
			return nil
		}
	}
	return nil
}

// startChecking starts t's health checker under hc, or marks t healthy when
// hc checks nothing. The first probe's result sets the state at once; later
// changes need hc.healthy / hc.unhealthy consecutive results.
func startChecking(ctx context.Context, t *target, hc healthCheck) {
	probe := hc.prober()
	if probe == nil {
		t.healthy.Store(true)
		t.stopCheck = func() {}
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.stopCheck = func() { cancel(); <-done }
	logger := klog.FromContext(ctx).WithValues("backend", t.name, "address", t.addr)
	go func() {
		defer close(done)
		var ok, failed int
		first := true
		ticker := time.NewTicker(hc.interval)
		defer ticker.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, hc.timeout)
			err := probe(pctx, t.addr)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			was := t.healthy.Load()
			if err == nil {
				ok, failed = ok+1, 0
				if !was && (first || ok >= hc.healthy) {
					t.healthy.Store(true)
					logger.V(2).Info("Backend healthy")
				}
			} else {
				ok, failed = 0, failed+1
				if was && failed >= hc.unhealthy {
					t.healthy.Store(false)
					logger.V(2).Info("Backend unhealthy", "err", err)
				}
			}
			first = false
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
}
