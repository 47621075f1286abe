package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the demo started. The demo stops only its own
// children, by PID, and the kernel kills them too if the demo itself dies
// (Pdeathsig), so Ctrl-C or a crash leaves nothing behind.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string // last lines of output, for error messages
}

func startProc(name string, logw io.Writer, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			if len(p.lines) > 50 {
				p.lines = p.lines[len(p.lines)-50:]
			}
			p.mu.Unlock()
			if logw != nil {
				fmt.Fprintf(logw, "%s: %s\n", name, line)
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

var listenRE = regexp.MustCompile(`data=(\S+) admin=(\S+)`)

// waitFor returns the first output line matching re, or an error with the
// process's last output if it exits or the deadline passes first.
func (p *proc) waitFor(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m, nil
			}
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s did not start: %w\n%s", p.name, ctx.Err(), p.tail())
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail())
		case <-t.C:
		}
	}
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// stop sends SIGTERM to the child, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
