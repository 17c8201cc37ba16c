package pool

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Allocator hands out pool addresses to Services. It is safe for concurrent
// use; every method is atomic, so two Services that may not share an address
// never both get it.
type Allocator struct {
	mu    sync.Mutex
	pools []*Pool // sorted by name
	// byService maps a Service key to what it holds.
	byService map[string]*assignment
	// byIP maps an address to the Services holding it.
	byIP map[netip.Addr]map[string]*assignment
	// byKey maps a sharing key to the addresses its Services hold, so that
	// finding an address to share does not walk every address.
	byKey map[string]map[netip.Addr]int
	// hints[pool][i] is an address of the pool's range i such that every
	// address before it in the range is held: the search for a free address
	// starts there, which keeps allocation from walking every held address.
	hints map[string][]netip.Addr
}

type assignment struct {
	req Request
	ips []netip.Addr
}

// NewAllocator returns an allocator with no pools.
func NewAllocator() *Allocator {
	return &Allocator{
		byService: map[string]*assignment{},
		byIP:      map[netip.Addr]map[string]*assignment{},
		byKey:     map[string]map[netip.Addr]int{},
		hints:     map[string][]netip.Addr{},
	}
}

// SetPools replaces the pools. Addresses already assigned stay assigned, also
// when their pool is gone; the next Assign for their Service moves them if
// they are no longer allowed. It fails, changing nothing, when two pools
// overlap or a name repeats.
func (a *Allocator) SetPools(pools []*Pool) error {
	if err := validatePools(pools); err != nil {
		return err
	}
	sorted := slices.Clone(pools)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools = sorted
	clear(a.hints)
	return nil
}

// Assigned returns the addresses the Service key ("namespace/name") holds.
func (a *Allocator) Assigned(key string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if as := a.byService[key]; as != nil {
		return slices.Clone(as.ips)
	}
	return nil
}

// Release frees what the Service key holds. Releasing nothing is fine.
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.release(key)
}

func (a *Allocator) release(key string) {
	as := a.byService[key]
	if as == nil {
		return
	}
	for _, ip := range as.ips {
		delete(a.byIP[ip], key)
		if len(a.byIP[ip]) == 0 {
			delete(a.byIP, ip)
			a.freed(ip)
		}
		if k := as.req.SharingKey; k != "" {
			a.byKey[k][ip]--
			if a.byKey[k][ip] == 0 {
				delete(a.byKey[k], ip)
			}
			if len(a.byKey[k]) == 0 {
				delete(a.byKey, k)
			}
		}
	}
	delete(a.byService, key)
}

func (a *Allocator) record(req Request, ips []netip.Addr) {
	key := req.Key()
	a.release(key)
	as := &assignment{req: req, ips: ips}
	a.byService[key] = as
	for _, ip := range ips {
		if a.byIP[ip] == nil {
			a.byIP[ip] = map[string]*assignment{}
		}
		a.byIP[ip][key] = as
		if k := req.SharingKey; k != "" {
			if a.byKey[k] == nil {
				a.byKey[k] = map[netip.Addr]int{}
			}
			a.byKey[k][ip]++
		}
	}
}

// freed moves the search hint of ip's range back to ip, which just became
// free.
func (a *Allocator) freed(ip netip.Addr) {
	for _, p := range a.pools {
		hints := a.hints[p.Name]
		for i, r := range p.Ranges {
			if i < len(hints) && r.Contains(ip) && ip.Less(hints[i]) {
				hints[i] = ip
			}
		}
	}
}

// Restore records that a Service already holds ips (read from its status
// when the controller starts), without checking pools or selectors: the next
// Assign for the Service does that. An address that lies in no pool is not
// ours and is skipped; an address held by a Service this one may not share
// with is skipped too, and reported in the error, so restoring Services
// oldest first lets the oldest keep a contested address. It returns the
// addresses it recorded.
func (a *Allocator) Restore(req Request, ips []netip.Addr) ([]netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var kept []netip.Addr
	var problems []string
	for _, ip := range ips {
		if a.poolOf(ip) == nil {
			continue
		}
		if err := a.sharable(&req, ip); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		kept = append(kept, ip)
	}
	if len(kept) > 0 {
		a.record(req, kept)
	}
	if len(problems) > 0 {
		return kept, fmt.Errorf("Service %s: %s", req.Key(), strings.Join(problems, "; "))
	}
	return kept, nil
}

// Assign returns the addresses for the Service, one per family it gets, in
// the order of req.Families. Called again with the same Request it returns
// the same addresses. When the Request changed (another requested address,
// another pool, new ports that clash with a sharer) it moves the Service, or
// fails and leaves what the Service holds unchanged.
func (a *Allocator) Assign(req Request) ([]netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ips, err := a.choose(&req)
	if err != nil {
		return nil, err
	}
	a.record(req, ips)
	return slices.Clone(ips), nil
}

func (a *Allocator) choose(req *Request) ([]netip.Addr, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	candidates, err := a.candidatePools(req)
	if err != nil {
		return nil, err
	}
	var current []netip.Addr
	if as := a.byService[req.Key()]; as != nil {
		current = as.ips
	}
	var ips []netip.Addr
	for i, f := range req.wantedFamilies() {
		ip, err := a.chooseFamily(req, f, candidates, current)
		if err != nil {
			// PreferDualStack: a family after the first that no pool offers,
			// or whose pools are full, is left out (the next Assign tries
			// again); any other failure is an error.
			if req.Policy == PreferDualStack && i > 0 && (err.Reason == ReasonNoFamily || err.Reason == ReasonExhausted) {
				continue
			}
			return nil, err
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

func checkRequest(req *Request) *Error {
	wanted := req.wantedFamilies()
	if len(wanted) == 0 {
		return &Error{Reason: ReasonInvalid, Subject: SubjectFamilies, Msg: "the Service has no IP family"}
	}
	if req.Policy == RequireDualStack && len(wanted) < 2 {
		return &Error{Reason: ReasonInvalid, Subject: SubjectFamilies, Msg: "RequireDualStack needs two IP families"}
	}
	seen := map[Family]bool{}
	for _, ip := range req.IPs {
		f := FamilyOf(ip)
		if seen[f] {
			return &Error{Reason: ReasonInvalid, Subject: SubjectRequestedIP, Msg: fmt.Sprintf("more than one %s address requested", f)}
		}
		seen[f] = true
		if !slices.Contains(wanted, f) {
			return &Error{Reason: ReasonInvalid, Subject: SubjectRequestedIP,
				Msg: fmt.Sprintf("requested address %s is %s, but the Service only gets %s (spec.ipFamilies and spec.ipFamilyPolicy)", ip, f, familiesText(wanted))}
		}
	}
	return nil
}

func familiesText(fs []Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, " and ")
}

// candidatePools returns the pools that may serve req, in name order.
func (a *Allocator) candidatePools(req *Request) ([]*Pool, *Error) {
	if req.Pool != "" {
		p := a.poolNamed(req.Pool)
		if p == nil {
			return nil, &Error{Reason: ReasonUnknownPool, Subject: SubjectPool, Msg: fmt.Sprintf("there is no IPPool %q", req.Pool)}
		}
		if ok, why := p.selects(req); !ok {
			return nil, &Error{Reason: ReasonNotSelected, Subject: SubjectPool, Msg: fmt.Sprintf("IPPool %q may not serve this Service: %s", p.Name, why)}
		}
		return []*Pool{p}, nil
	}
	var out []*Pool
	var excluded []string
	for _, p := range a.pools {
		if !p.AutoAssign && len(req.IPs) == 0 {
			continue
		}
		if ok, why := p.selects(req); !ok {
			excluded = append(excluded, fmt.Sprintf("IPPool %q: %s", p.Name, why))
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 && len(req.IPs) == 0 {
		// With requested addresses, checkRequested explains better which
		// pool the address is in and why it may not be used.
		msg := "there is no IPPool with autoAssign enabled"
		if len(excluded) > 0 {
			msg = "no IPPool selects this Service (" + strings.Join(excluded, "; ") + ")"
		}
		return nil, &Error{Reason: ReasonNotSelected, Subject: SubjectPool, Msg: msg}
	}
	return out, nil
}

func (a *Allocator) poolNamed(name string) *Pool {
	for _, p := range a.pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (a *Allocator) poolOf(ip netip.Addr) *Pool {
	for _, p := range a.pools {
		if p.Contains(ip) {
			return p
		}
	}
	return nil
}

// chooseFamily picks the address of family f: the requested one, else the
// one the Service holds if still allowed, else one shared under the same
// key, else the first free one.
func (a *Allocator) chooseFamily(req *Request, f Family, candidates []*Pool, current []netip.Addr) (netip.Addr, *Error) {
	if ip, ok := req.requestedIP(f); ok {
		return ip, a.checkRequested(req, ip, candidates)
	}
	if req.Pool == "" {
		// Pools without autoAssign give out only requested addresses.
		candidates = slices.DeleteFunc(slices.Clone(candidates), func(p *Pool) bool { return !p.AutoAssign })
	}
	offered := false
	for _, p := range candidates {
		offered = offered || p.HasFamily(f)
	}
	if !offered {
		return netip.Addr{}, &Error{Reason: ReasonNoFamily, Subject: SubjectFamilies,
			Msg: fmt.Sprintf("no IPPool that may serve this Service has %s addresses (%s)", f, poolNames(candidates))}
	}
	for _, ip := range current {
		if FamilyOf(ip) == f && inAnyUsable(candidates, ip) && a.sharable(req, ip) == nil {
			return ip, nil
		}
	}
	if req.SharingKey != "" {
		if ip, ok := a.sharedCandidate(req, f, candidates); ok {
			return ip, nil
		}
	}
	for _, p := range candidates {
		if ip, ok := a.firstFree(p, f, req.Key()); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, &Error{Reason: ReasonExhausted, Subject: SubjectPool,
		Msg: fmt.Sprintf("no free %s address in %s", f, poolNames(candidates))}
}

func (a *Allocator) checkRequested(req *Request, ip netip.Addr, candidates []*Pool) *Error {
	if !inAnyUsable(candidates, ip) {
		p := a.poolOf(ip)
		switch {
		case p == nil:
			return &Error{Reason: ReasonNotInPool, Subject: SubjectRequestedIP, Msg: fmt.Sprintf("requested address %s is outside every IPPool", ip)}
		case p.AvoidBuggyIPs && isBuggy(ip):
			return &Error{Reason: ReasonNotInPool, Subject: SubjectRequestedIP, Msg: fmt.Sprintf("requested address %s ends in .0 or .255, which IPPool %q avoids (avoidBuggyIPs)", ip, p.Name)}
		case req.Pool != "":
			return &Error{Reason: ReasonNotInPool, Subject: SubjectRequestedIP, Msg: fmt.Sprintf("requested address %s belongs to IPPool %q, not to the requested IPPool %q", ip, p.Name, req.Pool)}
		default:
			_, why := p.selects(req)
			return &Error{Reason: ReasonNotSelected, Subject: SubjectRequestedIP, Msg: fmt.Sprintf("requested address %s belongs to IPPool %q, which may not serve this Service: %s", ip, p.Name, why)}
		}
	}
	return a.sharable(req, ip)
}

// sharable checks req against every other holder of ip.
func (a *Allocator) sharable(req *Request, ip netip.Addr) *Error {
	key := req.Key()
	holders := make([]string, 0, len(a.byIP[ip]))
	for k := range a.byIP[ip] {
		if k != key {
			holders = append(holders, k)
		}
	}
	sort.Strings(holders)
	for _, k := range holders {
		if err := req.canShare(&a.byIP[ip][k].req, ip); err != nil {
			return err
		}
	}
	return nil
}

// sharedCandidate returns the lowest address of family f in the candidate
// pools that is held by Services req may share with.
func (a *Allocator) sharedCandidate(req *Request, f Family, candidates []*Pool) (netip.Addr, bool) {
	var best netip.Addr
	for ip := range a.byKey[req.SharingKey] {
		holders := a.byIP[ip]
		if FamilyOf(ip) != f || (best.IsValid() && best.Less(ip)) || !inAnyUsable(candidates, ip) {
			continue
		}
		if _, self := holders[req.Key()]; self && len(holders) == 1 {
			continue
		}
		if a.sharable(req, ip) == nil {
			best = ip
		}
	}
	return best, best.IsValid()
}

// firstFree returns the first address of family f in p that nobody but self
// holds, in range order.
func (a *Allocator) firstFree(p *Pool, f Family, self string) (netip.Addr, bool) {
	hints := a.hints[p.Name]
	if len(hints) != len(p.Ranges) {
		hints = make([]netip.Addr, len(p.Ranges))
		for i, r := range p.Ranges {
			hints[i] = r.First
		}
		a.hints[p.Name] = hints
	}
	for i, r := range p.Ranges {
		if r.Family() != f {
			continue
		}
		for ip := hints[i]; ip.IsValid() && ip.Compare(r.Last) <= 0; ip = ip.Next() {
			// Everything before ip is held (by others, or by self only
			// when self's address was rejected for another reason).
			hints[i] = ip
			if p.AvoidBuggyIPs && isBuggy(ip) {
				continue
			}
			holders := a.byIP[ip]
			if _, mine := holders[self]; len(holders) == 0 || (mine && len(holders) == 1) {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

func inAnyUsable(pools []*Pool, ip netip.Addr) bool {
	for _, p := range pools {
		if p.usable(ip) {
			return true
		}
	}
	return false
}

func poolNames(pools []*Pool) string {
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = fmt.Sprintf("%q", p.Name)
	}
	switch len(names) {
	case 0:
		return "no IPPool with autoAssign"
	case 1:
		return "IPPool " + names[0]
	}
	return "IPPools " + strings.Join(names, ", ")
}
