//go:build !linux

package cluster

import "syscall"

// childProcAttr puts a child in its own process group, so that Stop can kill
// it together with anything it started.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
