//go:build unix

package bench

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system, all threads) the benchmark
// process has used. kube-apiserver and etcd are child processes and are
// not in it.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
