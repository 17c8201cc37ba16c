// Package election decides which node announces each load-balancer address.
// Every speaker computes the same answer from the same inputs, without
// talking to the others: nodes are ranked per address by a hash of node name
// and address (rendezvous hashing), and the first eligible node wins. When a
// node goes away only the addresses it announced move; when one comes back
// only the addresses it ranks first for move to it.
package election

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"slices"
	"sort"
)

// Node is a node as the election sees it.
type Node struct {
	Name string
	// Excluded is true when the node must not carry load-balancer traffic
	// (see providers.NodeExclusion).
	Excluded bool
	// Live is true when the node runs a speaker that its peers hear.
	Live bool
}

// Service is a LoadBalancer Service whose addresses need announcing.
type Service struct {
	// Name is namespace/name.
	Name      string
	Addresses []netip.Addr
	// Local is true for externalTrafficPolicy: Local.
	Local bool
	// ReadyNodes are the nodes with a ready endpoint of the Service; only
	// read when Local.
	ReadyNodes map[string]bool
}

// Assignment is the election's result for one address.
type Assignment struct {
	// Node announces the address; empty when no node is eligible.
	Node string
	// Services are the names of the Services holding the address, sorted.
	Services []string
}

// Elect assigns every address of services to a node. A node is eligible for
// an address when it is live and not excluded; for an address that Services
// with externalTrafficPolicy Local hold, only the nodes with ready endpoints
// for the largest number of those Services are eligible. An address held only
// by Local Services without any ready endpoint is assigned to no node: there
// would be nowhere to deliver its traffic. Among the eligible nodes the first
// in Rank wins.
func Elect(nodes []Node, services []Service) map[netip.Addr]Assignment {
	var candidates []string
	for _, n := range nodes {
		if n.Live && !n.Excluded {
			candidates = append(candidates, n.Name)
		}
	}
	holders := map[netip.Addr][]*Service{}
	for i := range services {
		s := &services[i]
		for _, a := range s.Addresses {
			a = a.Unmap()
			if !slices.Contains(holders[a], s) {
				holders[a] = append(holders[a], s)
			}
		}
	}
	out := make(map[netip.Addr]Assignment, len(holders))
	for addr, svcs := range holders {
		names := make([]string, 0, len(svcs))
		for _, s := range svcs {
			names = append(names, s.Name)
		}
		sort.Strings(names)
		eligible := eligibleFor(candidates, svcs)
		var winner string
		if len(eligible) > 0 {
			winner = Rank(addr, eligible)[0]
		}
		out[addr] = Assignment{Node: winner, Services: names}
	}
	return out
}

// eligibleFor narrows candidates for an address held by svcs (see Elect).
func eligibleFor(candidates []string, svcs []*Service) []string {
	allLocal := true
	for _, s := range svcs {
		if !s.Local {
			allLocal = false
		}
	}
	best := 0
	score := make(map[string]int, len(candidates))
	for _, n := range candidates {
		for _, s := range svcs {
			if s.Local && s.ReadyNodes[n] {
				score[n]++
			}
		}
		best = max(best, score[n])
	}
	if best == 0 && allLocal {
		return nil
	}
	var out []string
	for _, n := range candidates {
		if score[n] == best {
			out = append(out, n)
		}
	}
	return out
}

// Rank orders nodes for addr, most preferred first: by the SHA-256 of the
// node name, a zero byte and the address in its canonical text form; equal
// hashes (never in practice) by name. The order of nodes does not matter.
// Every speaker version must keep this function unchanged, or speakers of
// two versions would disagree during an upgrade.
func Rank(addr netip.Addr, nodes []string) []string {
	type ranked struct {
		name string
		sum  [sha256.Size]byte
	}
	rs := make([]ranked, len(nodes))
	a := addr.Unmap().String()
	for i, n := range nodes {
		rs[i] = ranked{name: n, sum: sha256.Sum256([]byte(n + "\x00" + a))}
	}
	sort.Slice(rs, func(i, j int) bool {
		if c := bytes.Compare(rs[i].sum[:], rs[j].sum[:]); c != 0 {
			return c < 0
		}
		return rs[i].name < rs[j].name
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out
}
