package ccm

import (
	"context"
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
