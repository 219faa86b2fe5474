package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/handoff"
)

// runUpgrade is `switchyard upgrade`: the running switchyard starts the
// binary now on disk, which takes over its listening sockets and the app.
// It exits 0 once the new process serves, 1 when it did not take over (the
// old one serves on).
func runUpgrade(ctx context.Context, r *clientRun, _ []string) error {
	if r.cfg.pidFile != "" {
		return upgradeBySignal(ctx, r)
	}
	fmt.Fprintln(r.stderr, "upgrading: the binary on disk starts with the listening sockets and takes over")
	res, err := r.api.Upgrade(ctx)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	if r.cfg.json {
		return printJSON(r.stdout, res)
	}
	if res.NewPID != 0 {
		fmt.Fprintf(r.stdout, "upgraded: pid %d took over from pid %d\n", res.NewPID, res.OldPID)
	} else {
		fmt.Fprintf(r.stdout, "upgraded: a new process took over from pid %d\n", res.OldPID)
	}
	return nil
}

// upgradeBySignal sends SIGUSR2 to the process the pid file names and
// waits until the pid file names another one (the new process serves), or
// the old one reports a failure next to it (PIDFILE.upgrade), or --timeout.
func upgradeBySignal(ctx context.Context, r *clientRun) error {
	pid, err := handoff.ReadPIDFile(r.cfg.pidFile)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	sent := time.Now()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("upgrade: signal pid %d (from %s): %w", pid, r.cfg.pidFile, err)
	}
	fmt.Fprintf(r.stderr, "upgrading: sent SIGUSR2 to pid %d; waiting for the new process to serve\n", pid)
	deadline := time.Now().Add(r.cfg.timeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if now, err := handoff.ReadPIDFile(r.cfg.pidFile); err == nil && now != pid {
			fmt.Fprintf(r.stdout, "upgraded: pid %d took over from pid %d\n", now, pid)
			return nil
		}
		if rep, ok := readUpgradeReport(r.cfg.pidFile + ".upgrade"); ok && rep.PID == pid && rep.Time.After(sent) && rep.Error != "" {
			return fmt.Errorf("upgrade: %s", rep.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("upgrade: the pid file %s still names pid %d after %v: see its log", r.cfg.pidFile, pid, r.cfg.timeout)
}

func readUpgradeReport(path string) (upgradeReport, bool) {
	var rep upgradeReport
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &rep) != nil {
		return rep, false
	}
	return rep, true
}
