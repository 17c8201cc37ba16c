package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestExhaustionThenReleaseThenSuccess(t *testing.T) {
	a := newAllocator(t, newPool("tiny", withRanges("192.0.2.1-192.0.2.2")))
	first := mustAssign(t, a, newRequest("a"))
	mustAssign(t, a, newRequest("b"))
	var e *Error
	if _, err := a.Assign(newRequest("c")); !errors.As(err, &e) || e.Reason != ReasonExhausted {
		t.Fatalf("third Assign error = %v, want %s", err, ReasonExhausted)
	}
	a.Release("default/a")
	a.Release("default/a") // releasing twice is fine
	if got := mustAssign(t, a, newRequest("c")); got != first {
		t.Fatalf("after release got %s, want the freed %s", got, first)
	}
}

func TestChangesMoveTheService(t *testing.T) {
	a := newAllocator(t,
		newPool("a", withRanges("192.0.2.0/29")),
		newPool("b", withRanges("198.51.100.0/29")))
	web := newRequest("web")
	if got := mustAssign(t, a, web); got != "192.0.2.0" {
		t.Fatalf("initial = %s", got)
	}
	if got := mustAssign(t, a, newRequest("web", withIPs("192.0.2.5"))); got != "192.0.2.5" {
		t.Fatalf("after requesting .5 = %s", got)
	}
	if got := mustAssign(t, a, newRequest("other")); got != "192.0.2.0" {
		t.Fatalf("the old address was not freed: other got %s", got)
	}
	if got := mustAssign(t, a, newRequest("web", withPool("b"))); got != "198.51.100.0" {
		t.Fatalf("after naming pool b = %s", got)
	}
	if got := a.Assigned("default/web"); addrsString(got) != "198.51.100.0" {
		t.Fatalf("Assigned = %v", got)
	}
	// A change that cannot be served leaves the Service where it is.
	if _, err := a.Assign(newRequest("web", withIPs("192.0.2.0"))); err == nil {
		t.Fatal("requesting another Service's address succeeded")
	}
	if got := a.Assigned("default/web"); addrsString(got) != "198.51.100.0" {
		t.Fatalf("after a failed change Assigned = %v, want the old address", got)
	}
}

func TestSetPoolsRejectsOverlapAndKeepsOldPools(t *testing.T) {
	a := newAllocator(t, newPool("a", withRanges("192.0.2.0/30")))
	err := a.SetPools([]*Pool{newPool("a", withRanges("192.0.2.0/30")), newPool("b", withRanges("192.0.2.2-192.0.2.9"))})
	if err == nil || !strings.Contains(err.Error(), `pool "b" range 192.0.2.2-192.0.2.9 overlaps pool "a" range 192.0.2.0-192.0.2.3`) {
		t.Fatalf("SetPools error = %v", err)
	}
	if err := a.SetPools([]*Pool{newPool("a", withRanges("192.0.2.0")), newPool("a", withRanges("192.0.2.1"))}); err == nil {
		t.Fatal("duplicate pool names accepted")
	}
	if got := mustAssign(t, a, newRequest("web")); got != "192.0.2.0" {
		t.Fatalf("after rejected SetPools got %s", got)
	}
}

func TestRemovedPoolMovesServiceOnNextAssign(t *testing.T) {
	a := newAllocator(t, newPool("old", withRanges("192.0.2.1")), newPool("new", withRanges("198.51.100.1")))
	if got := mustAssign(t, a, newRequest("web", withPool("old"))); got != "192.0.2.1" {
		t.Fatalf("got %s", got)
	}
	if err := a.SetPools([]*Pool{newPool("new", withRanges("198.51.100.1"))}); err != nil {
		t.Fatal(err)
	}
	if got := mustAssign(t, a, newRequest("web")); got != "198.51.100.1" {
		t.Fatalf("after pool removal got %s", got)
	}
}

// TestRestoreGivesTheSameAssignments assigns a mix of Services, rebuilds a
// new allocator from the addresses they hold (as the provider does from
// Service status after a restart), and checks that every Service keeps its
// addresses and new Services get only free ones.
func TestRestoreGivesTheSameAssignments(t *testing.T) {
	pools := func() []*Pool {
		return []*Pool{
			newPool("v4", withRanges("192.0.2.0/29")),
			newPool("v6", withRanges("2001:db8::/125")),
			newPool("manual", withRanges("203.0.113.0/29"), withoutAutoAssign()),
		}
	}
	reqs := []Request{
		newRequest("a"),
		newRequest("b", withFamilies(RequireDualStack, IPv4, IPv6)),
		newRequest("c", withKey("k"), withPorts("TCP/80")),
		newRequest("d", withKey("k"), withPorts("TCP/443")),
		newRequest("e", withIPs("203.0.113.5")),
		newRequest("f", withFamilies(SingleStack, IPv6)),
	}
	before := newAllocator(t, pools()...)
	held := map[string][]netip.Addr{}
	for _, r := range reqs {
		ips, err := before.Assign(r)
		if err != nil {
			t.Fatalf("Assign(%s): %v", r.Key(), err)
		}
		held[r.Key()] = ips
	}
	after := newAllocator(t, pools()...)
	for _, r := range reqs {
		kept, err := after.Restore(r, held[r.Key()])
		if err != nil || addrsString(kept) != addrsString(held[r.Key()]) {
			t.Fatalf("Restore(%s) = %v, %v; want %v", r.Key(), kept, err, held[r.Key()])
		}
	}
	for _, r := range reqs {
		if got, want := mustAssign(t, after, r), addrsString(held[r.Key()]); got != want {
			t.Errorf("after restore %s got %s, want %s", r.Key(), got, want)
		}
	}
	if fmt.Sprint(before.Stats()) != fmt.Sprint(after.Stats()) {
		t.Errorf("stats differ: before %v, after %v", before.Stats(), after.Stats())
	}
	next := mustAssign(t, after, newRequest("g"))
	if next != mustAssign(t, before, newRequest("g")) {
		t.Errorf("a new Service gets %s after restore but a different address before", next)
	}
}

func TestRestoreConflictsOldestWins(t *testing.T) {
	a := newAllocator(t, newPool("p", withRanges("192.0.2.0/30")))
	ip := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	if _, err := a.Restore(newRequest("old"), ip); err != nil {
		t.Fatal(err)
	}
	kept, err := a.Restore(newRequest("young", withPorts("TCP/443")), ip)
	if len(kept) != 0 || err == nil || !strings.Contains(err.Error(), "in use by Service default/old") {
		t.Fatalf("Restore of a conflicting holder = %v, %v", kept, err)
	}
	// Addresses outside every pool belong to someone else and are ignored.
	kept, err = a.Restore(newRequest("foreign"), []netip.Addr{netip.MustParseAddr("198.51.100.1")})
	if len(kept) != 0 || err != nil {
		t.Fatalf("Restore of a foreign address = %v, %v", kept, err)
	}
	if got := mustAssign(t, a, newRequest("young", withPorts("TCP/443"))); got != "192.0.2.0" {
		t.Fatalf("the loser got %s", got)
	}
}

func TestStats(t *testing.T) {
	a := newAllocator(t,
		newPool("dual", withRanges("192.0.2.0/24", "2001:db8::/120"), avoidingBuggyIPs()),
		newPool("empty", withRanges("198.51.100.0/30")))
	mustAssign(t, a, newRequest("a", withFamilies(RequireDualStack, IPv4, IPv6)))
	mustAssign(t, a, newRequest("b", withKey("k")))
	mustAssign(t, a, newRequest("c", withKey("k"), withPorts("TCP/443")))
	got := a.Stats()
	want := map[string]Stats{
		"dual":  {IPv4: FamilyCounts{Assigned: 2, Available: 252}, IPv6: FamilyCounts{Assigned: 1, Available: 255}},
		"empty": {IPv4: FamilyCounts{Assigned: 0, Available: 4}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Stats = %v, want %v", got, want)
	}
}

// TestConcurrentAssign runs many goroutines assigning distinct Services
// against a small pool, some with requested addresses, and releasing some.
// Run with -race. No address may ever be held by two Services.
func TestConcurrentAssign(t *testing.T) {
	const size, services = 16, 200
	a := newAllocator(t, newPool("small", withRanges(fmt.Sprintf("192.0.2.0-192.0.2.%d", size-1))))
	var mu sync.Mutex
	owner := map[string]string{} // address -> Service, as reported by Assign
	var wg sync.WaitGroup
	errs := make(chan error, services)
	for i := range services {
		wg.Go(func() {
			name := fmt.Sprintf("svc-%d", i)
			opts := []requestOption{}
			if i%3 == 0 {
				opts = append(opts, withIPs(fmt.Sprintf("192.0.2.%d", i%size)))
			}
			r := newRequest(name, opts...)
			ips, err := a.Assign(r)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || (e.Reason != ReasonExhausted && e.Reason != ReasonInUse) {
					errs <- fmt.Errorf("%s: unexpected error %v", name, err)
				}
				return
			}
			mu.Lock()
			for _, ip := range ips {
				if prev, taken := owner[ip.String()]; taken {
					errs <- fmt.Errorf("%s got %s, which %s holds", name, ip, prev)
				}
				owner[ip.String()] = name
			}
			mu.Unlock()
			if i%5 == 0 {
				mu.Lock()
				for _, ip := range ips {
					delete(owner, ip.String())
				}
				mu.Unlock()
				a.Release(r.Key())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stats := a.Stats()["small"].IPv4
	if stats.Assigned != int64(len(owner)) || stats.Assigned+stats.Available != size {
		t.Errorf("stats %+v disagree with %d held addresses", stats, len(owner))
	}
	for ip, name := range owner {
		if got := addrsString(a.Assigned("default/" + name)); got != ip {
			t.Errorf("%s holds %q in the allocator, but Assign gave it %s", name, got, ip)
		}
	}
}

func TestPreferDualStackGainsSecondFamilyWhenFreed(t *testing.T) {
	a := newAllocator(t, newPool("both", withRanges("192.0.2.1-192.0.2.2", "2001:db8::1")))
	mustAssign(t, a, newRequest("v6", withFamilies(SingleStack, IPv6)))
	web := newRequest("web", withFamilies(PreferDualStack, IPv4, IPv6))
	if got := mustAssign(t, a, web); got != "192.0.2.1" {
		t.Fatalf("with IPv6 full got %s", got)
	}
	a.Release("default/v6")
	if got := mustAssign(t, a, web); got != "192.0.2.1,2001:db8::1" {
		t.Fatalf("after IPv6 freed got %s, want both families and the same IPv4 address", got)
	}
}

func TestFreedAddressesAreReusedLowestFirst(t *testing.T) {
	a := newAllocator(t, newPool("p", withRanges("192.0.2.0/29", "2001:db8::/126")))
	for i := range 5 {
		mustAssign(t, a, newRequest(fmt.Sprintf("s%d", i)))
	}
	a.Release("default/s3")
	a.Release("default/s1")
	for _, want := range []string{"192.0.2.1", "192.0.2.3", "192.0.2.5"} {
		if got := mustAssign(t, a, newRequest("n"+want)); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	// Pool changes start the search afresh.
	if err := a.SetPools([]*Pool{newPool("p", withRanges("192.0.2.0/28"))}); err != nil {
		t.Fatal(err)
	}
	a.Release("default/s0")
	if got := mustAssign(t, a, newRequest("again")); got != "192.0.2.0" {
		t.Fatalf("after SetPools got %s", got)
	}
}
