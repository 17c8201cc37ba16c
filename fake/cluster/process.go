package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is a child program running in a process group of its own, with
// its output going to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // valid after exited is closed
}

// spawner starts child processes from one locked OS thread that lives as
// long as the cluster. Linux delivers the parent-death signal when the
// thread that forked a child exits, not the process; Go may end an
// arbitrary thread at any time (for example after a goroutine that locked
// it into a network namespace exits), so the forking thread is kept alive
// and out of reach of other goroutines until Stop.
type spawner struct {
	requests chan func()
}

func newSpawner() *spawner {
	s := &spawner{requests: make(chan func())}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when requests is closed the goroutine exits and
		// the thread is discarded with it.
		for f := range s.requests {
			f()
		}
	}()
	return s
}

// start runs the program with args, its output appended to logPath.
func (s *spawner) start(name, path string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating %s log: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: logFile, exited: make(chan struct{})}
	errc := make(chan error, 1)
	s.requests <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// close releases the spawning thread. Call it after every child is dead.
func (s *spawner) close() {
	close(s.requests)
}

// pid returns the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the whole process group and waits for the process
// to be reaped.
func (p *process) kill() error {
	if p.running() {
		// The negative pid addresses the group (Setpgid made pid the group id).
		if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("killing %s (pid %d): %w", p.name, p.pid(), err)
		}
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 30s after SIGKILL", p.name, p.pid())
	}
}

// logTail returns the last n lines of the process's log.
func (p *process) logTail(n int) string {
	return fileTail(p.logPath, n)
}

// fileTail returns the last n lines of a file, or a note saying why it
// could not be read.
func fileTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
