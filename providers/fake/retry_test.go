package fake

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/extlb/extlb/providers/fake/cloud"
	"github.com/extlb/extlb/test/loopback"
)

func TestConnectionErrorsAreRetried(t *testing.T) {
	// The API's address answers every connection with a reset until, after
	// the provider's first attempts failed, the fake cloud takes it over.
	// The address is held all along (but for the moment between the reset
	// listener's close and the cloud's listen), on a loopback address of the
	// test's own, so no other socket can take the port meanwhile.
	lo := loopback.Reserve(t)
	ln, err := net.Listen("tcp", lo.IP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var resets sync.WaitGroup
	resets.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
		}
	})
	p := buildProvider(t, context.Background(), "--fake-endpoint=http://"+addr, "--fake-retry-wait-min=50ms", "--fake-retry-wait-max=200ms")

	vips := loopback.Reserve(t)
	start := time.Now()
	started := make(chan struct{})
	time.AfterFunc(400*time.Millisecond, func() {
		defer close(started)
		_ = ln.Close()
		resets.Wait()
		cfg := cloud.DefaultConfig()
		cfg.Listen = addr
		cfg.VIPRange = vips.String()
		s, err := cloud.New(cfg)
		if err != nil {
			t.Error(err)
			return
		}
		if err := s.Start(context.Background()); err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { _ = s.Close() })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.EnsureLoadBalancer(ctx, "test", webService(), nil)
	<-started
	if err != nil {
		t.Fatalf("Ensure while the API came up: %v", err)
	}
	if time.Since(start) < 400*time.Millisecond || len(st.Ingress) != 1 {
		t.Errorf("succeeded after %v with %+v: the first attempts cannot have reached the API", time.Since(start), st)
	}
}
