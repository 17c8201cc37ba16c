package api

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeStrictNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		desc, body, field, reason string
	}{
		{"unknown nested field", `{"spec":{"healthCheck":{"type":"TCP","port":1,"retries":3}}}`, "spec.healthCheck.retries", "unknown field"},
		{"type in a list", `{"spec":{"backends":[{"name":"a","address":"127.0.0.1"},{"name":7}]}}`, "spec.backends[1].name", "must be a string"},
		{"list expected", `{"spec":{"ports":{"protocol":"TCP"}}}`, "spec.ports", "must be a list"},
		{"object expected", `{"spec":[]}`, "spec", "must be an object"},
		{"tags must be strings", `{"spec":{"tags":{"a":1}}}`, "spec.tags", "must be an object of strings"},
		{"bad outage time", `{"outages":[{"durationMillis":1,"start":"tomorrow"}]}`, "outages[0].start", "RFC 3339"},
		{"top-level unknown", `{"kind":"LoadBalancer"}`, "kind", "unknown field"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var v any = &LoadBalancer{}
			if strings.HasPrefix(tc.body, `{"outages"`) {
				v = &Faults{}
			}
			err := DecodeStrict(strings.NewReader(tc.body), v)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("got %q / %q, want %q / ...%q...", fe.Field, fe.Reason, tc.field, tc.reason)
			}
		})
	}
}

func TestDecodeStrictAcceptsAFullObject(t *testing.T) {
	body := `{"name":"web","spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"backendPort":30080}],
	  "backends":[{"name":"a","address":"127.0.1.1"}],"healthCheck":{"type":"HTTP","port":32000,"path":"/healthz"},
	  "sourceRanges":["127.0.0.0/8"],"sessionAffinity":{"type":"ClientIP","timeoutSeconds":60},"tags":{"k":"v"}},
	  "status":{"address":"127.240.0.1"}}`
	var lb LoadBalancer
	if err := DecodeStrict(strings.NewReader(body), &lb); err != nil {
		t.Fatal(err)
	}
	if err := lb.Spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if lb.Spec.HealthCheck.Port != 32000 || lb.Spec.SessionAffinity.TimeoutSeconds != 60 || lb.Spec.Tags["k"] != "v" || lb.Spec.Ports[0].BackendPort != 30080 {
		t.Errorf("decoded %+v", lb.Spec)
	}
	var f Faults
	if err := DecodeStrict(strings.NewReader(`{"outages":[{"durationMillis":5,"start":"2026-01-02T03:04:05Z"}]}`), &f); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !f.Outages[0].Start.Equal(want) {
		t.Errorf("outage start %v, want %v", f.Outages[0].Start, want)
	}
}

func TestHealthCheckValidation(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		hc    HealthCheck
		field string
	}{
		{"none needs nothing", HealthCheck{Type: HealthCheckNone}, ""},
		{"tcp needs a port", HealthCheck{Type: HealthCheckTCP}, "spec.healthCheck.port"},
		{"path only for http", HealthCheck{Type: HealthCheckTCP, Port: 1, Path: "/x"}, "spec.healthCheck.path"},
		{"relative path", HealthCheck{Type: HealthCheckHTTP, Port: 1, Path: "healthz"}, "spec.healthCheck.path"},
		{"timeout over interval", HealthCheck{Type: HealthCheckHTTP, Port: 1, IntervalMillis: 100, TimeoutMillis: 200}, "spec.healthCheck.timeoutMillis"},
		{"default timeout fits a short interval", HealthCheck{Type: HealthCheckHTTP, Port: 1, IntervalMillis: 100}, ""},
		{"interval too short", HealthCheck{Type: HealthCheckTCP, Port: 1, IntervalMillis: 5}, "spec.healthCheck.intervalMillis"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			spec := LoadBalancerSpec{Ports: []Port{{Protocol: ProtocolTCP, Port: 1, BackendPort: 1}}, HealthCheck: &tc.hc}
			err := spec.Validate()
			if tc.field == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("error %v, want one on %s", err, tc.field)
			}
		})
	}
}
