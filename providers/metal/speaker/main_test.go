package speaker_test

import (
	"os"
	"testing"

	"github.com/extlb/extlb/fake/cluster/clustertest"
)

// controlPlane is a real kube-apiserver and etcd on loopback, shared by the
// real-packet tests of this package: the speakers talk to it from the root
// namespace while their raw sockets live in the nodes' namespaces.
var controlPlane clustertest.Shared

func TestMain(m *testing.M) { os.Exit(controlPlane.Run(m)) }
