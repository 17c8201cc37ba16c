package controller

import (
	"errors"
	"testing"
	"time"
)

func TestParsePortRange(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		in      string
		want    PortRange
		wantErr bool
	}{
		{desc: "default range", in: "30000-32767", want: PortRange{Base: 30000, Size: 2768}},
		{desc: "single port", in: "30000", want: PortRange{Base: 30000, Size: 1}},
		{desc: "spaces", in: " 100 - 200 ", want: PortRange{Base: 100, Size: 101}},
		{desc: "reversed", in: "200-100", wantErr: true},
		{desc: "not numbers", in: "a-b", wantErr: true},
		{desc: "too high", in: "60000-70000", wantErr: true},
		{desc: "zero", in: "0-10", wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParsePortRange(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBandOffset(t *testing.T) {
	for _, tc := range []struct {
		desc string
		size int
		want int
	}{
		{desc: "tiny range has no lower band", size: 10, want: 0},
		{desc: "small range gets the minimum", size: 100, want: 16},
		{desc: "default range is size/32", size: 2768, want: 86},
		{desc: "large range is capped", size: 30000, want: 128},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := bandOffset(tc.size); got != tc.want {
				t.Errorf("bandOffset(%d) = %d, want %d", tc.size, got, tc.want)
			}
		})
	}
}

func TestAllocateNextPrefersUpperBand(t *testing.T) {
	r := PortRange{Base: 30000, Size: 100} // lower band 30000-30015
	a := NewNodePortAllocator(r, 1)
	seen := map[int]bool{}
	for i := 0; i < 84; i++ {
		p, err := a.AllocateNext("default/svc")
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if p < 30016 {
			t.Fatalf("allocation %d got %d from the lower band while the upper band had room", i, p)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p, err := a.AllocateNext("default/svc")
	if err != nil || p >= 30016 {
		t.Fatalf("with the upper band full, got %d, %v; want a lower-band port", p, err)
	}
}

func TestAllocatorOwnership(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		setup   func(a *NodePortAllocator)
		owner   string
		port    int
		wantErr bool
	}{
		{desc: "free port", owner: "ns/a", port: 30100},
		{desc: "port held by another service", setup: func(a *NodePortAllocator) { a.SetOwner("ns/b", []int{30100}) }, owner: "ns/a", port: 30100, wantErr: true},
		{desc: "port held by the same service", setup: func(a *NodePortAllocator) { a.SetOwner("ns/a", []int{30100}) }, owner: "ns/a", port: 30100},
		{desc: "port released when its service went", setup: func(a *NodePortAllocator) { a.SetOwner("ns/b", []int{30100}); a.Release("ns/b") }, owner: "ns/a", port: 30100},
		{desc: "port dropped by a service update", setup: func(a *NodePortAllocator) { a.SetOwner("ns/b", []int{30100}); a.SetOwner("ns/b", []int{30101}) }, owner: "ns/a", port: 30100},
		{desc: "port the API server reported taken", setup: func(a *NodePortAllocator) { a.MarkTaken(30100) }, owner: "ns/a", port: 30100, wantErr: true},
		{desc: "port reported taken, then claimed and released by its owner", setup: func(a *NodePortAllocator) {
			a.MarkTaken(30100)
			a.SetOwner("ns/b", []int{30100})
			a.Release("ns/b")
		}, owner: "ns/a", port: 30100},
		// It leaked before: a port reported taken whose owner never
		// appeared in the informer stayed out of the range for good.
		{desc: "port reported taken whose owner never showed up, after the TTL", setup: func(a *NodePortAllocator) {
			a.MarkTaken(30100)
			later := time.Now().Add(takenTTL + time.Second)
			a.now = func() time.Time { return later }
		}, owner: "ns/a", port: 30100},
		{desc: "port outside the range", owner: "ns/a", port: 29999, wantErr: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a := NewNodePortAllocator(PortRange{Base: 30000, Size: 2768}, 1)
			if tc.setup != nil {
				tc.setup(a)
			}
			err := a.Allocate(tc.owner, tc.port)
			if (err != nil) != tc.wantErr {
				t.Errorf("Allocate(%s, %d) err = %v, wantErr %v", tc.owner, tc.port, err, tc.wantErr)
			}
		})
	}
}

func TestAllocatorExhaustion(t *testing.T) {
	a := NewNodePortAllocator(PortRange{Base: 30000, Size: 20}, 7)
	for i := 0; i < 20; i++ {
		if _, err := a.AllocateNext("ns/a"); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if _, err := a.AllocateNext("ns/b"); !errors.Is(err, ErrNoFreeNodePort) {
		t.Fatalf("allocation from a full range: err = %v, want ErrNoFreeNodePort", err)
	}
	a.Release("ns/a")
	if _, err := a.AllocateNext("ns/b"); err != nil {
		t.Fatalf("allocation after release: %v", err)
	}
}
