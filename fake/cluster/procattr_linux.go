package cluster

import "syscall"

// childProcAttr puts a child in its own process group, so that Stop can kill
// it together with anything it started, and has the kernel kill it if the
// thread that started it (see spawner) dies with the test process.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
