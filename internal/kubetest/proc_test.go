package kubetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// proc is one entry of /proc as far as these tests care.
type proc struct {
	pid, ppid int
	comm      string
	state     string
}

// readProc returns the process with pid, or ok=false when it no longer exists.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	// Format: pid (comm) state ppid ...; comm may hold spaces and parens.
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return proc{pid: pid, ppid: ppid, comm: s[open+1 : closing], state: fields[0]}, true
}

// childrenOf lists the live (not zombie) children of pid named etcd or
// kube-apiserver.
func childrenOf(pid int) map[int]proc {
	out := map[int]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(n)
		// comm is cut at 15 bytes: "kube-apiserver" fits.
		if ok && p.ppid == pid && p.state != "Z" && (p.comm == "etcd" || p.comm == "kube-apiserver") {
			out[n] = p
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie waiting for a reaper
// (in a container PID 1 may never reap the orphans it inherits).
func alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && p.state != "Z"
}
