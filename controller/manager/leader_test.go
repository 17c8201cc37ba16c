package manager

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

func testElection() LeaderElection {
	return LeaderElection{Enabled: true, Namespace: "extlb-system", Name: "extlb-controller", Identity: "replica-a",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond}
}

func holder(t *testing.T, client *fake.Clientset) string {
	t.Helper()
	l, err := client.CoordinationV1().Leases("extlb-system").Get(context.Background(), "extlb-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestLeaseIsReleasedOnlyAfterRunReturns: on shutdown the Lease stays held
// while run (the workers, inside provider calls) is still stopping, and is
// released once it has returned, so that a standby never overlaps with us.
func TestLeaseIsReleasedOnlyAfterRunReturns(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := fake.NewClientset()
	running := make(chan struct{})
	finish := make(chan struct{})
	runErr := errors.New("run's own error")
	done := make(chan error, 1)
	go func() {
		done <- runWithLeaderElection(ctx, testElection(), client, func(ctx context.Context) error {
			close(running)
			<-ctx.Done() // shutdown reaches run first
			<-finish     // a provider call still in flight
			return runErr
		}, logger)
	}()
	<-running
	cancel()
	// run has been told to stop but has not returned: the Lease must stay.
	time.Sleep(300 * time.Millisecond) // three renew periods: time for a premature release to show
	if h := holder(t, client); h != "replica-a" {
		t.Fatalf("Lease holder while run is still stopping = %q, want replica-a (released too early)", h)
	}
	close(finish)
	if err := <-done; !errors.Is(err, runErr) {
		t.Errorf("runWithLeaderElection = %v, want run's error", err)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return holder(t, client) == "", nil
	}); err != nil {
		t.Errorf("Lease not released after run returned: holder %q", holder(t, client))
	}
}

// TestShutdownBeforeLeadingReturns: a replica that never led stops at once.
func TestShutdownBeforeLeadingReturns(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	client := fake.NewClientset()
	other := testElection()
	other.Identity = "replica-b"
	// replica-b leads for the whole test.
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	bRunning := make(chan struct{})
	go func() {
		_ = runWithLeaderElection(bctx, other, client, func(ctx context.Context) error { close(bRunning); <-ctx.Done(); return nil }, logger)
	}()
	<-bRunning
	done := make(chan error, 1)
	go func() {
		done <- runWithLeaderElection(ctx, testElection(), client, func(context.Context) error {
			t.Error("the standby ran while the other replica leads")
			return nil
		}, logger)
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("standby shutdown = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a standby did not stop on shutdown")
	}
}
