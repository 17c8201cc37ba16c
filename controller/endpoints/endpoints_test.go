package endpoints

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "extlb_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	var notReady atomic.Pointer[error]
	syncing := errors.New("informer caches not synced")
	notReady.Store(&syncing)
	s, err := Start(t.Context(), "127.0.0.1:0", reg, func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "extlb_test_total 1") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz while not ready: %d %q, want 503 with the reason", code, body)
	}
	notReady.Store(nil)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
}

func TestDisabled(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		addr     string
		disabled bool
	}{
		{desc: "empty", addr: "", disabled: true},
		{desc: "zero", addr: "0", disabled: true},
		{desc: "port only", addr: ":10260"},
		{desc: "port zero on loopback", addr: "127.0.0.1:0"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Disabled(tc.addr); got != tc.disabled {
				t.Errorf("Disabled(%q) = %v, want %v", tc.addr, got, tc.disabled)
			}
			if !tc.disabled {
				return
			}
			s, err := Start(t.Context(), tc.addr, prometheus.NewRegistry(), nil)
			if err != nil || s.Addr() != "" {
				t.Errorf("Start(%q) = %q, %v; want nothing served", tc.addr, s.Addr(), err)
			}
			s.Stop()
		})
	}
}

func TestBadAddressNamesTheFlag(t *testing.T) {
	_, err := Start(t.Context(), "256.0.0.1:http", prometheus.NewRegistry(), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "--metrics-bind-address") {
		t.Errorf("error %v, want one naming --metrics-bind-address", err)
	}
}
