package engine

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	total    *prometheus.CounterVec
	depth    *prometheus.GaugeVec
	batch    prometheus.Histogram
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backlot_jobs_total",
			Help: "Jobs enqueued (state=enqueued) and runs ended, by kind and resulting state.",
		}, []string{"kind", "state"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backlot_jobs_queue_depth",
			Help: "Unfinished jobs by queue and state, refreshed periodically.",
		}, []string{"queue", "state"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "backlot_jobs_enqueue_batch_size",
			Help:    "Jobs per group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backlot_jobs_duration_seconds",
			Help:    "Time spent in job handlers, by kind.",
			Buckets: prometheus.DefBuckets,
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.total, m.depth, m.batch, m.duration} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("jobs metrics: %w (one engine per registry)", err)
			}
			return nil, fmt.Errorf("jobs metrics: %w", err)
		}
	}
	return m, nil
}
