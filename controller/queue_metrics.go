package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// queueMetrics exposes the workqueue's own metrics (depth, adds, latency,
// work duration, retries) under extlb_workqueue_*.
type queueMetrics struct {
	depth          *prometheus.GaugeVec
	adds           *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	workDuration   *prometheus.HistogramVec
	unfinished     *prometheus.GaugeVec
	longestRunning *prometheus.GaugeVec
	retries        *prometheus.CounterVec
}

var _ workqueue.MetricsProvider = (*queueMetrics)(nil)

func newQueueMetrics() *queueMetrics {
	buckets := prometheus.ExponentialBuckets(1e-5, 10, 10)
	return &queueMetrics{
		depth:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "extlb_workqueue_depth", Help: "Current depth of the workqueue."}, []string{"name"}),
		adds:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extlb_workqueue_adds_total", Help: "Adds handled by the workqueue."}, []string{"name"}),
		latency:        prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "extlb_workqueue_queue_duration_seconds", Help: "Time an item waits in the workqueue.", Buckets: buckets}, []string{"name"}),
		workDuration:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "extlb_workqueue_work_duration_seconds", Help: "Time processing an item takes.", Buckets: buckets}, []string{"name"}),
		unfinished:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "extlb_workqueue_unfinished_work_seconds", Help: "Seconds of work in progress not yet observed by work_duration."}, []string{"name"}),
		longestRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "extlb_workqueue_longest_running_processor_seconds", Help: "Seconds the longest running processor has been running."}, []string{"name"}),
		retries:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extlb_workqueue_retries_total", Help: "Retries handled by the workqueue."}, []string{"name"}),
	}
}

func (q *queueMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(q.depth, q.adds, q.latency, q.workDuration, q.unfinished, q.longestRunning, q.retries)
}

func (q *queueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return q.depth.WithLabelValues(name)
}
func (q *queueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return q.adds.WithLabelValues(name)
}
func (q *queueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return q.latency.WithLabelValues(name)
}
func (q *queueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return q.workDuration.WithLabelValues(name)
}
func (q *queueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return q.unfinished.WithLabelValues(name)
}
func (q *queueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return q.longestRunning.WithLabelValues(name)
}
func (q *queueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return q.retries.WithLabelValues(name)
}
