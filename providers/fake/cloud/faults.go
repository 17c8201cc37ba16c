package cloud

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/extlb/extlb/providers/fake/api"
)

// faultInjector decides, per request, whether to answer with an injected
// fault. Outage windows are kept with absolute start times.
type faultInjector struct {
	mu     sync.Mutex
	faults api.Faults
	rnd    *rand.Rand
	now    func() time.Time
}

func newFaultInjector(f api.Faults, seed uint64, now func() time.Time) *faultInjector {
	if seed == 0 {
		seed = uint64(now().UnixNano())
	}
	fi := &faultInjector{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now}
	fi.set(f)
	return fi
}

// set replaces the faults; outage windows without a Start begin
// StartAfterMillis from now.
func (fi *faultInjector) set(f api.Faults) api.Faults {
	now := fi.now()
	f.Outages = append([]api.Outage(nil), f.Outages...)
	for i := range f.Outages {
		if f.Outages[i].Start.IsZero() {
			f.Outages[i].Start = now.Add(time.Duration(f.Outages[i].StartAfterMillis) * time.Millisecond)
		}
		f.Outages[i].StartAfterMillis = 0
	}
	fi.mu.Lock()
	fi.faults = f
	fi.mu.Unlock()
	return f
}

func (fi *faultInjector) get() api.Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.faults
	f.Outages = append([]api.Outage(nil), f.Outages...)
	return f
}

// fault is an injected answer; status 0 means none.
type fault struct {
	kind       string
	status     int
	retryAfter time.Duration
}

// decide returns the latency to add and the fault, if any, for one request.
func (fi *faultInjector) decide() (time.Duration, fault) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.faults
	latency := time.Duration(f.LatencyMillis) * time.Millisecond
	now := fi.now()
	for _, o := range f.Outages {
		end := o.Start.Add(time.Duration(o.DurationMillis) * time.Millisecond)
		if !now.Before(o.Start) && now.Before(end) {
			return latency, fault{kind: "outage", status: http.StatusServiceUnavailable, retryAfter: end.Sub(now)}
		}
	}
	if f.ThrottleRate > 0 && fi.rnd.Float64() < f.ThrottleRate {
		ra := f.RetryAfterSeconds
		if ra == 0 {
			ra = api.DefaultRetryAfterSeconds
		}
		return latency, fault{kind: "throttle", status: http.StatusTooManyRequests, retryAfter: time.Duration(ra) * time.Second}
	}
	if f.ErrorRate > 0 && fi.rnd.Float64() < f.ErrorRate {
		return latency, fault{kind: "error", status: http.StatusInternalServerError}
	}
	return latency, fault{}
}

// retryAfterHeader renders d as whole seconds, rounded up, at least 1.
func retryAfterHeader(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
