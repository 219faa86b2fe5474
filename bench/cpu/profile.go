package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/switchyard/switchyard/bench/internal/launch"
)

// profileRun is -profile: switchyard alone, built with net/http/pprof (an
// overlay, launch.BuildProfiled), driven with the first scenario while a CPU
// profile of -profile-seconds is taken from it. The profile and the binary
// (pprof needs it for the symbols) are written beside each other.
func profileRun(ctx context.Context, g *launch.Group, c config, drive driver, upstream string) error {
	bin, err := g.BuildProfiled("cmd/switchyard")
	if err != nil {
		return err
	}
	pprofAddr, err := launch.FreeAddr()
	if err != nil {
		return err
	}
	bins := c.bins
	bins.Switchyard = bin
	p, err := g.StartProxy(launch.Switchyard, bins, launch.Options{
		Upstream: upstream, Workers: c.syWorkers, QueueTimeout: time.Second, HealthPath: "/healthcheck",
		SwitchyardLog: c.syLog, Env: []string{"SWITCHYARD_PPROF_ADDR=" + pprofAddr},
	})
	if err != nil {
		return err
	}
	sc := c.scenarios[0]
	if _, err := drive(ctx, "http://"+p.Addr, sc, c.warmup, c.conns, c.limit); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	driven := make(chan error, 1)
	go func() {
		_, err := drive(ctx, "http://"+p.Addr, sc, c.requests, c.conns, c.limit)
		driven <- err
	}()
	time.Sleep(500 * time.Millisecond) // into the steady state
	perr := fetchProfile(ctx, pprofAddr, c.profileSeconds, c.profile)
	if err := <-driven; err != nil {
		return fmt.Errorf("drive: %w", err)
	}
	if perr != nil {
		return perr
	}
	if err := copyFile(bin, c.profile+".bin"); err != nil {
		return err
	}
	fmt.Printf("%s: %s under %s load\n  go tool pprof -top %s.bin %s\n", c.profile, launch.Switchyard, sc.name, c.profile, c.profile)
	return nil
}

func fetchProfile(ctx context.Context, addr string, seconds int, out string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
