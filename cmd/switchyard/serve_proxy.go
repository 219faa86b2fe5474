package main

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/proxy"
)

// proxySetting is one serve setting that lands in proxy.Config: its flag,
// and how its value is copied in.
type proxySetting struct {
	flag string
	set  func(*proxy.Config)
}

// proxySettings are the settings proxy.Config is made of, one each, so that
// when proxy.New (the one place that fills in the proxy's defaults and
// checks its config) refuses a value, the error names the setting. The
// request path's settings are httpSettings' (serve_http.go).
func (c *serveConfig) proxySettings() []proxySetting {
	return []proxySetting{
		{"queue-timeout", func(p *proxy.Config) { p.QueueTimeout = c.queueTimeout }},
		{"queue-size", func(p *proxy.Config) { p.QueueSize = c.queueSize }},
		{"queue-discipline", func(p *proxy.Config) { p.Discipline = c.discipline }},
		{"healthcheck-path", func(p *proxy.Config) { p.HealthPath = c.healthPath }},
		{"scheme", func(p *proxy.Config) { p.Scheme = c.scheme }},
		{"trusted-proxies", func(p *proxy.Config) { p.TrustedProxies = c.trusted }},
		{"header", func(p *proxy.Config) { p.ResponseHeaders = c.headers }},
		{"connect-timeout", func(p *proxy.Config) { p.ConnectTimeout = c.connectTimeout }},
		{"upstream-timeout", func(p *proxy.Config) { p.UpstreamTimeout = c.upstreamTimeout }},
	}
}

// proxyConfig is the proxy's Config from the settings.
func (c *serveConfig) proxyConfig() proxy.Config {
	var pc proxy.Config
	for _, s := range c.proxySettings() {
		s.set(&pc)
	}
	c.http.apply(&pc)
	return pc
}

// newProxy makes the proxy, with access (nil: no access log) and log. An
// error of proxy.New names the setting at fault.
func (c *serveConfig) newProxy(access *proxy.AccessLog, log *zerolog.Logger) (*proxy.Proxy, error) {
	pc := c.proxyConfig()
	pc.AccessLog, pc.Logger = access, log
	pc.Fallback = c.fleet.proxyFallback(c)
	p, err := proxy.New(pc)
	if err != nil {
		return nil, c.blame(err)
	}
	return p, nil
}

// checkProxy has proxy.New check the settings at parse time, so that a bad
// value fails before anything starts. With stats off the proxy it makes
// starts nothing and holds nothing: it is closed at once.
func (c *serveConfig) checkProxy() error {
	pc := c.proxyConfig()
	pc.DisableStats = true
	p, err := proxy.New(pc)
	if err != nil {
		return c.blame(err)
	}
	return p.Close()
}

// blame prefixes err, an error of proxy.New, with the setting whose value
// alone makes proxy.New fail; proxy.New's own message says what is wrong.
// This runs only when there is an error to report.
func (c *serveConfig) blame(err error) error {
	for _, s := range append(c.proxySettings(), c.http.proxySettings()...) {
		pc := proxy.Config{DisableStats: true}
		s.set(&pc)
		p, perr := proxy.New(pc)
		if perr != nil {
			return fmt.Errorf("--%s: %w", s.flag, err)
		}
		p.Close()
	}
	return fmt.Errorf("proxy settings: %w", err)
}
