package pool

// FamilyCounts counts the addresses of one family in a pool.
type FamilyCounts struct {
	// Assigned is the number of distinct addresses held by Services.
	Assigned int64
	// Available is the number of addresses that can still be handed out,
	// saturated at math.MaxInt64 for huge IPv6 ranges.
	Available int64
}

// Stats are a pool's counts per family.
type Stats struct {
	IPv4, IPv6 FamilyCounts
}

// Stats returns the counts of every pool, by pool name.
func (a *Allocator) Stats() map[string]Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]Stats, len(a.pools))
	for _, p := range a.pools {
		var held4, held6, usable4, usable6 int64
		for ip := range a.byIP {
			if !p.Contains(ip) {
				continue
			}
			if ip.Is4() {
				held4++
				if p.usable(ip) {
					usable4++
				}
			} else {
				held6++
				if p.usable(ip) {
					usable6++
				}
			}
		}
		out[p.Name] = Stats{
			IPv4: FamilyCounts{Assigned: held4, Available: p.Size(IPv4) - usable4},
			IPv6: FamilyCounts{Assigned: held6, Available: p.Size(IPv6) - usable6},
		}
	}
	return out
}
