package ccm

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	servicecontroller "k8s.io/cloud-provider/controllers/service"
	"k8s.io/component-base/featuregate"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"

	"github.com/extlb/extlb/fake/memory"
	"github.com/extlb/extlb/test/fixtures"
)

// TestUpstreamServiceControllerDrivesProvider runs k8s.io/cloud-provider's
// own service controller with an extlb provider behind the adapter, as a
// cloud-controller-manager would, and checks that it creates the load
// balancer and writes the status.
func TestUpstreamServiceControllerDrivesProvider(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := fixtures.Service("default", "web", fixtures.WithUID("uid-web"), fixtures.WithPorts(fixtures.Port("", v1.ProtocolTCP, 80, 30080)))
	node := fixtures.Node("n1")
	client := fake.NewClientset(svc, node)
	factory := informers.NewSharedInformerFactory(client, 0)
	mem := memory.New()
	ctrl, err := servicecontroller.New(New("extlb-test", mem), client, factory.Core().V1().Services(), factory.Core().V1().Nodes(), "test", featuregate.NewFeatureGate())
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go ctrl.Run(ctx, 1, controllersmetrics.NewControllerManagerMetrics("test"))
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && len(got.Status.LoadBalancer.Ingress) == 1, nil
	})
	if err != nil {
		t.Fatalf("upstream controller did not write the status: %v", err)
	}
	lb, ok := mem.LoadBalancerFor("default/web")
	if !ok || len(lb.Nodes) != 1 || lb.Nodes[0] != "n1" {
		t.Errorf("load balancer = %+v, %v; want one backed by n1", lb, ok)
	}
}

// TestUpstreamServiceControllerGetsOurValidation: under a
// cloud-controller-manager a Service that extlb's controller refuses is
// refused too, before the provider is called, and the upstream controller
// reports the InputError on the Service.
func TestUpstreamServiceControllerGetsOurValidation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := fixtures.Service("default", "web", fixtures.WithUID("uid-web"), fixtures.WithPorts(fixtures.Port("", v1.ProtocolTCP, 80, 30080)),
		fixtures.WithAnnotation(v1.AnnotationLoadBalancerSourceRangesKey, "10.0.0.0/8,not-a-cidr"))
	client := fake.NewClientset(svc, fixtures.Node("n1"))
	factory := informers.NewSharedInformerFactory(client, 0)
	mem := memory.New()
	ctrl, err := servicecontroller.New(New("extlb-test", mem), client, factory.Core().V1().Services(), factory.Core().V1().Nodes(), "test", featuregate.NewFeatureGate())
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go ctrl.Run(ctx, 1, controllersmetrics.NewControllerManagerMetrics("test"))
	var message string
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == "SyncLoadBalancerFailed" {
				message = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no SyncLoadBalancerFailed Event: %v", err)
	}
	if want := "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]"; !strings.Contains(message, want) {
		t.Errorf("Event %q does not name %s", message, want)
	}
	for _, c := range mem.Calls() {
		if c.Op == memory.OpEnsure || c.Op == memory.OpUpdate {
			t.Errorf("the provider was called for an invalid Service: %+v", c)
		}
	}
}
