package cloud

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// apiMetrics are the API's collectors, on the server's own registry.
type apiMetrics struct {
	requests      *prometheus.CounterVec
	faults        *prometheus.CounterVec
	loadBalancers prometheus.Gauge
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extlb_fake_api_requests_total",
			Help: "API requests by method, route and HTTP status code (injected faults included).",
		}, []string{"method", "route", "code"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extlb_fake_api_injected_faults_total",
			Help: "Faults injected into API answers, by kind (error, throttle, outage).",
		}, []string{"kind"}),
		loadBalancers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extlb_fake_loadbalancers",
			Help: "Load balancers that exist.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.faults, m.loadBalancers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering fake cloud metrics: %w", err)
		}
	}
	return m, nil
}
