package controller

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"

	"github.com/extlb/extlb/providers"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records
// nothing, so tests can leave it out.
type Metrics struct {
	reconciles        *prometheus.CounterVec
	reconcileDuration *prometheus.HistogramVec
	providerCalls     *prometheus.CounterVec
	providerDuration  *prometheus.HistogramVec
	apiWrites         *prometheus.CounterVec
	nodeSetSize       prometheus.Gauge
	servicesHandled   prometheus.Gauge
	queue             *queueMetrics
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extlb_reconciles_total", Help: "Service reconciles by result (success, error, retry, input_error).",
		}, []string{"result"}),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "extlb_reconcile_duration_seconds", Help: "Time to reconcile one Service, by result.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"result"}),
		providerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extlb_provider_calls_total", Help: "Provider calls by operation (ensure, update, delete) and result.",
		}, []string{"operation", "result"}),
		providerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "extlb_provider_call_duration_seconds", Help: "Provider call latency by operation and result.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"operation", "result"}),
		apiWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extlb_api_writes_total", Help: "Writes to the Kubernetes API (events excluded) by verb, subresource and result.",
		}, []string{"verb", "subresource", "result"}),
		nodeSetSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extlb_node_set_size", Help: "Nodes that currently back load balancers.",
		}),
		servicesHandled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extlb_services_handled", Help: "Services that currently have a load balancer from this controller.",
		}),
		queue: newQueueMetrics(),
	}
	reg.MustRegister(m.reconciles, m.reconcileDuration, m.providerCalls, m.providerDuration, m.apiWrites, m.nodeSetSize, m.servicesHandled)
	m.queue.register(reg)
	return m
}

func result(err error) string {
	if err == nil {
		return "success"
	}
	if _, ok := retryAfter(err); ok {
		return "retry"
	}
	var ie *providers.InputError
	if errors.As(err, &ie) {
		return "input_error"
	}
	return "error"
}

func (m *Metrics) observeReconcile(err error, d time.Duration) {
	if m == nil {
		return
	}
	r := result(err)
	m.reconciles.WithLabelValues(r).Inc()
	m.reconcileDuration.WithLabelValues(r).Observe(d.Seconds())
}

func (m *Metrics) observeProviderCall(op string, err error, d time.Duration) {
	if m == nil {
		return
	}
	r := result(err)
	m.providerCalls.WithLabelValues(op, r).Inc()
	m.providerDuration.WithLabelValues(op, r).Observe(d.Seconds())
}

func (m *Metrics) observeAPIWrite(verb, subresource string, err error) {
	if m == nil {
		return
	}
	r := "success"
	if err != nil {
		r = "error"
	}
	m.apiWrites.WithLabelValues(verb, subresource, r).Inc()
}

func (m *Metrics) setNodeSetSize(n int) {
	if m != nil {
		m.nodeSetSize.Set(float64(n))
	}
}

func (m *Metrics) setServicesHandled(n int) {
	if m != nil {
		m.servicesHandled.Set(float64(n))
	}
}

func (m *Metrics) workqueueProvider() workqueue.MetricsProvider {
	if m == nil {
		return nil
	}
	return m.queue
}
