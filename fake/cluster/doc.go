// Package cluster runs a real Kubernetes control plane, etcd and
// kube-apiserver, as child processes on loopback, for tests, end-to-end runs
// and the demo.
//
// The two programs are built from small Go modules of their own under
// fake/cluster/build (kept out of the project's go.mod) the first time they
// are needed, and cached; see EnsureBinaries. Start runs them with fresh
// keys, certificates and token users in a temporary directory, and Stop
// removes everything again. Only the API server and etcd run: no
// controller-manager, scheduler, kubelet or kube-proxy, so Services get
// cluster IPs and node ports from the real allocators but nothing else acts
// on them.
//
// Tests use StartForTest for a cluster of their own, or Shared for one
// cluster per package. The package is meant for Linux.
package cluster
