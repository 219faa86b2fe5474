package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100
// on every Linux architecture Go supports (`getconf CLK_TCK`).
const clockTicks = 100

// TreeCPU returns the CPU time (user + system) used so far by the process pid
// and all its live descendants (nginx's master and worker; HAProxy and the Go
// proxies are one process with threads).
//
// It reads utime+stime from /proc/PID/stat, which covers every thread of the
// process, including threads that have exited. Its unit is a 10 ms tick, so a
// difference of two samples is exact to ±20 ms — under 0.1 µs per request for
// 200k requests. /proc/PID/schedstat has nanoseconds but covers only the main
// thread, which for a Go program is a small, arbitrary share of the work.
func TreeCPU(pid int) (time.Duration, error) {
	children, err := childrenByParent()
	if err != nil {
		return 0, err
	}
	var total time.Duration
	queue := []int{pid}
	for n := 0; len(queue) > 0 && n < 10000; n++ { // bounded: a process tree is small
		p := queue[0]
		queue = queue[1:]
		st, err := readStat(p)
		if err != nil {
			if p == pid {
				return 0, err
			}
			continue // a child that just exited
		}
		total += st.cpu
		queue = append(queue, children[p]...)
	}
	return total, nil
}

type procStat struct {
	ppid int
	cpu  time.Duration
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])               // field 4
	utime, err2 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err3 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: bad numbers", pid)
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}

func childrenByParent() (map[int][]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	m := make(map[int][]int)
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		m[st.ppid] = append(m[st.ppid], pid)
	}
	return m, nil
}
