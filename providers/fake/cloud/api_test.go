package cloud_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/extlb/extlb/providers/fake/api"
	"github.com/extlb/extlb/providers/fake/cloud"
)

const validSpec = `{"spec":{"ports":[{"protocol":"TCP","port":8080,"backendPort":30080}],"backends":[{"name":"n","address":"127.201.8.1"}]}}`

func TestBadRequestsGet400NamingTheField(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	c := apiClient{t: t, url: s.URL()}
	for _, tc := range []struct {
		desc, name, body, field string
		reason                  string
	}{
		{desc: "bad protocol", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1},{"protocol":"SCTP","port":81,"backendPort":2}]}}`,
			field: "spec.ports[1].protocol", reason: "must be TCP or UDP"},
		{desc: "unknown field", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1,"nodePort":3}]}}`,
			field: "spec.ports[0].nodePort", reason: "unknown field"},
		{desc: "field case matters", body: `{"spec":{"Ports":[]}}`, field: "spec.Ports", reason: "unknown field"},
		{desc: "wrong type", body: `{"spec":{"ports":[{"protocol":"TCP","port":"80","backendPort":1}]}}`,
			field: "spec.ports[0].port", reason: "must be an integer"},
		{desc: "port out of range", body: `{"spec":{"ports":[{"protocol":"UDP","port":70000,"backendPort":1}]}}`,
			field: "spec.ports[0].port", reason: "between 1 and 65535"},
		{desc: "no ports", body: `{"spec":{}}`, field: "spec.ports", reason: "at least one port"},
		{desc: "duplicate port", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1},{"protocol":"TCP","port":80,"backendPort":2}]}}`,
			field: "spec.ports[1].port", reason: "already used by spec.ports[0]"},
		{desc: "bad backend address", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1}],"backends":[{"name":"a","address":"node-a"}]}}`,
			field: "spec.backends[0].address", reason: "must be an IP address"},
		{desc: "bad source range", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1}],"sourceRanges":["10.0.0.0/8","10.1.2.3"]}}`,
			field: "spec.sourceRanges[1]", reason: "must be a CIDR"},
		{desc: "bad health check type", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1}],"healthCheck":{"type":"ICMP","port":1}}}`,
			field: "spec.healthCheck.type", reason: "must be TCP, HTTP or None"},
		{desc: "bad affinity", body: `{"spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1}],"sessionAffinity":{"type":"Cookie"}}}`,
			field: "spec.sessionAffinity.type", reason: "must be ClientIP"},
		{desc: "name mismatch", body: `{"name":"other","spec":{"ports":[{"protocol":"TCP","port":80,"backendPort":1}]}}`,
			field: "name", reason: "must match the name in the path"},
		{desc: "bad name in path", name: "Web_1", body: validSpec, field: "name", reason: "must be a DNS label"},
		{desc: "not JSON", body: `{"spec":`, reason: "not valid JSON"},
		{desc: "trailing data", body: validSpec + `{}`, reason: "data after the JSON value"},
		{desc: "null spec", body: `{"spec":null}`, field: "spec", reason: "must not be null"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			name := tc.name
			if name == "" {
				name = "web"
			}
			code, data := c.do(http.MethodPut, "/v1/loadbalancers/"+name, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", code, data)
			}
			var e api.Error
			if err := json.Unmarshal(data, &e); err != nil {
				t.Fatalf("error body %q: %v", data, err)
			}
			if e.Field != tc.field || !strings.Contains(e.Reason, tc.reason) || e.Code != 400 {
				t.Errorf("got field %q reason %q, want field %q reason containing %q", e.Field, e.Reason, tc.field, tc.reason)
			}
			if tc.field != "" && !strings.HasPrefix(e.Message, tc.field+": ") {
				t.Errorf("message %q does not start with the field", e.Message)
			}
		})
	}
	// Nothing was created by any of them.
	code, data := c.do(http.MethodGet, "/v1/loadbalancers", nil)
	var list api.ListResponse
	if err := json.Unmarshal(data, &list); code != 200 || err != nil || len(list.Items) != 0 {
		t.Errorf("after bad requests: %d %s", code, data)
	}
}

func TestBearerTokenIsEnforced(t *testing.T) {
	t.Parallel()
	s := startCloud(t, func(c *cloud.Config) { c.Token = "s3cret" })
	for _, tc := range []struct {
		desc, token, path string
		want              int
	}{
		{desc: "no token", path: "/v1/loadbalancers", want: 401},
		{desc: "wrong token", token: "guess", path: "/v1/loadbalancers", want: 401},
		{desc: "right token", token: "s3cret", path: "/v1/loadbalancers", want: 200},
		{desc: "metrics need it too", path: "/metrics", want: 401},
		{desc: "faults need it too", path: "/v1/faults", want: 401},
		{desc: "healthz is open", path: "/healthz", want: 200},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			code, data := apiClient{t: t, url: s.URL(), token: tc.token}.do(http.MethodGet, tc.path, nil)
			if code != tc.want {
				t.Errorf("GET %s: %d %s, want %d", tc.path, code, data, tc.want)
			}
		})
	}
	// A write without the token changes nothing.
	if code, _ := (apiClient{t: t, url: s.URL()}).do(http.MethodPut, "/v1/loadbalancers/web", validSpec); code != 401 {
		t.Errorf("PUT without token: %d", code)
	}
	if code, _ := (apiClient{t: t, url: s.URL(), token: "s3cret"}).do(http.MethodGet, "/v1/loadbalancers/web", nil); code != 404 {
		t.Errorf("load balancer created without token: GET gave %d", code)
	}
}

func TestNonLoopbackListenNeedsToken(t *testing.T) {
	cfg := cloud.DefaultConfig()
	cfg.Listen = "0.0.0.0:0"
	if _, err := cloud.New(cfg); err == nil || !strings.Contains(err.Error(), "--fake-token") {
		t.Errorf("New with 0.0.0.0 and no token: %v, want an error naming --fake-token", err)
	}
	cfg.Token = "t"
	if _, err := cloud.New(cfg); err != nil {
		t.Errorf("with a token: %v", err)
	}
}

func TestLifecycleCreateGetListDelete(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	c := apiClient{t: t, url: s.URL()}
	code, _ := c.do(http.MethodPut, "/v1/loadbalancers/web", validSpec)
	if code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	first := c.get("web")
	if code, _ := c.do(http.MethodPut, "/v1/loadbalancers/web", validSpec); code != http.StatusOK {
		t.Errorf("second PUT: %d, want 200", code)
	}
	if again := c.get("web"); again.Status.Address != first.Status.Address {
		t.Errorf("address changed on update: %s -> %s", first.Status.Address, again.Status.Address)
	}
	c.put("db", api.LoadBalancerSpec{Ports: []api.Port{tcpPort(5432, 30432)}})
	code, data := c.do(http.MethodGet, "/v1/loadbalancers", nil)
	var list api.ListResponse
	if err := json.Unmarshal(data, &list); err != nil || code != 200 || len(list.Items) != 2 || list.Items[0].Name != "db" {
		t.Fatalf("list: %d %s", code, data)
	}
	if list.Items[0].Status.Address == list.Items[1].Status.Address {
		t.Errorf("two load balancers share %s", list.Items[0].Status.Address)
	}
	if code, _ := c.do(http.MethodDelete, "/v1/loadbalancers/web", nil); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := c.do(http.MethodDelete, "/v1/loadbalancers/web", nil); code != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", code)
	}
	if code, _ := c.do(http.MethodGet, "/v1/loadbalancers/web", nil); code != http.StatusNotFound {
		t.Errorf("get after delete: %d", code)
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	s := startCloud(t)
	c := apiClient{t: t, url: s.URL()}

	put := func(body string) {
		t.Helper()
		if code, data := c.do(http.MethodPut, "/v1/faults", body); code != 200 {
			t.Fatalf("PUT /v1/faults %s: %d %s", body, code, data)
		}
	}
	get := func() (*http.Response, error) {
		return http.Get(s.URL() + "/v1/loadbalancers")
	}

	put(`{"errorRate":1}`)
	if resp, err := get(); err != nil || resp.StatusCode != 500 {
		t.Errorf("errorRate 1: %v %v", resp.StatusCode, err)
	}

	put(`{"throttleRate":1,"retryAfterSeconds":7}`)
	if resp, err := get(); err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("throttleRate 1: %d Retry-After %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), err)
	}

	put(`{"outages":[{"durationMillis":3000}]}`)
	resp, err := get()
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("outage: %v %v", resp.StatusCode, err)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || ra > 3 {
		t.Errorf("outage Retry-After %q, want the rest of the 3 s window", resp.Header.Get("Retry-After"))
	}

	put(`{"latencyMillis":200}`)
	start := time.Now()
	if resp, err := get(); err != nil || resp.StatusCode != 200 {
		t.Errorf("latency only: %v %v", resp.StatusCode, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("request took %v with 200ms injected latency", d)
	}

	if code, data := c.do(http.MethodPut, "/v1/faults", `{"errorRate":2}`); code != 400 || !strings.Contains(string(data), `"field":"errorRate"`) {
		t.Errorf("bad faults: %d %s", code, data)
	}

	put(`{}`)
	_, metrics := c.do(http.MethodGet, "/metrics", nil)
	for _, want := range []string{
		`extlb_fake_api_injected_faults_total{kind="error"} 1`,
		`extlb_fake_api_injected_faults_total{kind="throttle"} 1`,
		`extlb_fake_api_injected_faults_total{kind="outage"} 1`,
		`extlb_fake_api_requests_total{code="500",method="GET",route="/v1/loadbalancers"} 1`,
		`extlb_fake_api_requests_total{code="429",method="GET",route="/v1/loadbalancers"} 1`,
		`extlb_fake_api_requests_total{code="200",method="PUT",route="/v1/faults"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestOutageFlagStartsAtServerStart(t *testing.T) {
	t.Parallel()
	cfg := cloud.DefaultConfig()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse([]string{"--fake-outage=+2s", "--fake-error-rate=0"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	s := startCloud(t, func(c *cloud.Config) { c.Faults = cfg.Faults })
	resp, err := http.Get(s.URL() + "/v1/loadbalancers")
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("during the outage window: %v %v", resp.StatusCode, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.URL() + "/v1/loadbalancers"); err == nil && resp.StatusCode == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("API still unavailable after the 2 s outage window")
}

func TestBadFlagsAreNamed(t *testing.T) {
	for _, tc := range []struct{ desc, flag, want string }{
		{"outage without duration", "--fake-outage=10s", "--fake-outage"},
		{"bad VIP range", "--fake-vip-range=127.240.0.0", "--fake-vip-range"},
		{"bad listen", "--fake-listen=nohost", "--fake-listen"},
		{"error rate over 1", "--fake-error-rate=1.5", "--fake-error-rate: must be between 0 and 1"},
		{"negative outage", "--fake-outage=+-1s", "--fake-outage"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := cloud.DefaultConfig()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			cfg.AddFlags(fs)
			if err := fs.Parse([]string{tc.flag}); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Complete(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Complete: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
