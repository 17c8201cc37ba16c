package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/test/fixtures"
)

// TestReadyConditionOnTheRealAPIServer: the API server takes our
// condition (its type name, the strategic merge by type, the delete
// directive), and it says provisioned, failed with the field, and goes
// with the address when the Service stops being ours.
func TestReadyConditionOnTheRealAPIServer(t *testing.T) {
	e := setUp(t, controlPlane.Get(t))
	admin, ns, class := e.admin, e.ns, e.class
	e.start(t)
	condition := func(ctx context.Context, name string) (*v1.Service, *metav1.Condition, string) {
		svc, err := getService(ctx, admin, ns, name)
		if err != nil {
			return nil, nil, err.Error()
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, controller.ConditionLoadBalancerReady)
		return svc, c, fmt.Sprintf("conditions %+v", svc.Status.Conditions)
	}

	// Another controller's condition on the same Service must survive ours.
	web := createService(t, admin, newService(ns, "web", class))
	web.Status.Conditions = []metav1.Condition{{Type: "example.com/Other", Status: metav1.ConditionTrue, Reason: "Mine", LastTransitionTime: metav1.Now()}}
	if _, err := admin.CoreV1().Services(ns).UpdateStatus(t.Context(), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "web provisioned", func(ctx context.Context) (bool, string) {
		svc, c, s := condition(ctx, "web")
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == controller.ReasonEnsured && c.ObservedGeneration == svc.Generation &&
			len(svc.Status.LoadBalancer.Ingress) == 1, s
	})
	// (This API server validates source ranges, field and annotation, and
	// duplicate ports itself; what is left to refuse is the provider's.)
	createService(t, admin, newService(ns, "bad", class, fixtures.WithPort(v1.ServicePort{Name: "sig", Port: 3868, Protocol: v1.ProtocolSCTP})))
	eventually(t, 20*time.Second, "bad refused naming the field", func(ctx context.Context) (bool, string) {
		_, c, s := condition(ctx, "bad")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == controller.ReasonProviderRefused &&
			strings.HasPrefix(c.Message, "spec.ports[1].protocol:"), s
	})
	updateService(t, admin, ns, "web", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeClusterIP
		s.Spec.LoadBalancerClass = nil
		s.Spec.AllocateLoadBalancerNodePorts = nil
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
	})
	eventually(t, 20*time.Second, "web's address and our condition gone, the other kept", func(ctx context.Context) (bool, string) {
		svc, c, s := condition(ctx, "web")
		return svc != nil && c == nil && len(svc.Status.LoadBalancer.Ingress) == 0 &&
			meta.FindStatusCondition(svc.Status.Conditions, "example.com/Other") != nil, s
	})
}
